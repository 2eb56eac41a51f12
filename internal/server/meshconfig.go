package server

import (
	"fmt"
	"io"
	"os"

	"github.com/causeway-mesh/causeway/internal/model"
)

// loadMeshConfig reads and parses Istio's MeshConfig YAML at path, reading
// at most model.MaxMeshConfigBytes (and one more, to tell a file that is
// too large).
func loadMeshConfig(path string) (*model.MeshConfig, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("mesh config: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, model.MaxMeshConfigBytes+1))
	if err != nil {
		return nil, fmt.Errorf("mesh config %s: %w", path, err)
	}
	mc, err := model.ParseMeshConfig(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return mc, nil
}
