package abuse

import (
	"os"
	"testing"

	"github.com/causeway-mesh/causeway/internal/testkit"
)

func TestMain(m *testing.M) { os.Exit(testkit.Main(m)) }
