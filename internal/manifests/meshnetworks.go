package manifests

import (
	"context"
	"fmt"
	"io/fs"

	"github.com/causeway-mesh/causeway/internal/files"
	"github.com/causeway-mesh/causeway/internal/model"
)

// LoadMeshNetworks reads and validates the meshNetworks file at path
// (Istio's format, YAML or JSON), a regular file of at most
// files.MeshNetworks' limit. Errors name the file.
func LoadMeshNetworks(ctx context.Context, path string) (*model.MeshNetworks, error) {
	data, err := files.Read(ctx, path, files.MeshNetworks)
	if err != nil {
		return nil, fmt.Errorf("mesh networks file: %w", err)
	}
	return parseMeshNetworks(path, data)
}

// LoadMeshNetworksFS is LoadMeshNetworks on a file system, for embedded
// examples.
func LoadMeshNetworksFS(ctx context.Context, fsys fs.FS, name string) (*model.MeshNetworks, error) {
	data, err := files.ReadFS(ctx, fsys, name, files.MeshNetworks)
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
