package install

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
	"sigs.k8s.io/yaml"
)

// FieldManager is the server-side apply field manager of Apply.
const FieldManager = "causeway"

// ApplyOptions tune Apply.
type ApplyOptions struct {
	// DryRun asks the API server to validate, default and admit every
	// object without persisting anything (dryRun=All).
	DryRun bool
}

// Apply sends every object of a manifest (a YAML stream, as Render writes
// or `causeway manifest generate` prints) to the API server with
// server-side apply, in order, as `kubectl apply --server-side
// --force-conflicts` does, and returns "Kind namespace/name" per object.
// It stops at the first object the server refuses.
func Apply(ctx context.Context, rc *rest.Config, manifest []byte, opts ApplyOptions) ([]string, error) {
	dc, err := discovery.NewDiscoveryClientForConfig(rc)
	if err != nil {
		return nil, fmt.Errorf("discovery client: %w", err)
	}
	groups, err := restmapper.GetAPIGroupResources(dc)
	if err != nil {
		return nil, fmt.Errorf("discover the API server's resources: %w", err)
	}
	mapper := restmapper.NewDiscoveryRESTMapper(groups)
	dyn, err := dynamic.NewForConfig(rc)
	if err != nil {
		return nil, fmt.Errorf("dynamic client: %w", err)
	}
	po := metav1.PatchOptions{FieldManager: FieldManager, Force: new(true)}
	if opts.DryRun {
		po.DryRun = []string{metav1.DryRunAll}
	}
	var applied []string
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(manifest)))
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return applied, nil
		}
		if err != nil {
			return applied, fmt.Errorf("read manifest: %w", err)
		}
		var obj unstructured.Unstructured
		if err := yaml.Unmarshal(doc, &obj.Object); err != nil {
			return applied, fmt.Errorf("read manifest: %w", err)
		}
		if len(obj.Object) == 0 {
			continue
		}
		gvk := obj.GroupVersionKind()
		id := gvk.Kind + " " + obj.GetName()
		if ns := obj.GetNamespace(); ns != "" {
			id = gvk.Kind + " " + ns + "/" + obj.GetName()
		}
		m, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
		if err != nil {
			return applied, fmt.Errorf("%s: %w", id, err)
		}
		var ri dynamic.ResourceInterface = dyn.Resource(m.Resource)
		if m.Scope.Name() == meta.RESTScopeNameNamespace {
			ri = dyn.Resource(m.Resource).Namespace(obj.GetNamespace())
		}
		data, err := obj.MarshalJSON()
		if err != nil {
			return applied, fmt.Errorf("%s: %w", id, err)
		}
		if _, err := ri.Patch(ctx, obj.GetName(), types.ApplyPatchType, data, po); err != nil {
			return applied, fmt.Errorf("apply %s: %w", id, err)
		}
		applied = append(applied, id)
	}
}
