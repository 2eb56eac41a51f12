package abuse

import (
	"os"
	"testing"

	"github.com/causeway-mesh/causeway/internal/testkit"
)

// TestMain removes the causeway binary the tests built (testkit.Main).
func TestMain(m *testing.M) { os.Exit(testkit.Main(m)) }
