package manifests

import (
	"fmt"
	"io/fs"
	"os"

	"github.com/causeway-mesh/causeway/internal/model"
)

// LoadMeshNetworks reads and validates the meshNetworks file at path
// (Istio's format, YAML or JSON). Errors name the file.
func LoadMeshNetworks(path string) (*model.MeshNetworks, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("mesh networks file: %w", err)
	}
	return parseMeshNetworks(path, data)
}

// LoadMeshNetworksFS is LoadMeshNetworks on a file system, for embedded
// examples.
func LoadMeshNetworksFS(fsys fs.FS, name string) (*model.MeshNetworks, error) {
	data, err := fs.ReadFile(fsys, name)
	if err != nil {
		return nil, fmt.Errorf("mesh networks file: %w", err)
	}
	return parseMeshNetworks(name, data)
}

func parseMeshNetworks(name string, data []byte) (*model.MeshNetworks, error) {
	mn, err := model.ParseMeshNetworks(data)
	if err != nil {
		return nil, fmt.Errorf("mesh networks file %s: %w", name, err)
	}
	return mn, nil
}
