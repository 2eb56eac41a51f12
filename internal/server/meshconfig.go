package server

import (
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/causeway-mesh/causeway/internal/kube"
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

// discoverySelector compiles the mesh config's discoverySelectors for the
// cluster watchers (nil: every namespace) and logs what is watched.
func discoverySelector(mc *model.MeshConfig, log *slog.Logger) (*kube.DiscoverySelector, error) {
	d, err := kube.NewDiscoverySelector(mc.DiscoverySelectors)
	if err != nil {
		return nil, fmt.Errorf("mesh config: %w: fix the file given to --mesh-config", err)
	}
	if d != nil {
		log.Info("discovery selectors set: only the selected namespaces' Services, EndpointSlices and Pods are watched", "selectors", d.String())
	}
	return d, nil
}
