package e2e

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"

	securityv1beta1 "istio.io/api/security/v1beta1"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	istioclient "istio.io/client-go/pkg/clientset/versioned"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/yaml"

	"github.com/causeway-mesh/causeway/internal/testenv"
)

const (
	// peerAuthCRDFile is Istio's PeerAuthentication CRD as the server's
	// PeerAuthentication integration test installs it: copied unchanged
	// from crd-all.gen.yaml of the istio.io/istio module tools/istio pins.
	// One copy for both tests.
	peerAuthCRDFile = "../../internal/server/testdata/peerauthentication-crd.yaml"
	// maxCRDFileBytes bounds the CRD file read.
	maxCRDFileBytes = 1 << 20
	// peerAuthTimeout bounds how long a PeerAuthentication change may take
	// to reach a workload's inbound (watch, publish, LDS): a deadline for
	// a condition, not a speed assertion.
	peerAuthTimeout = 60 * time.Second
)

var crdGVR = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}

// istioClient reads and writes cluster c's Istio objects (JSON: Istio's
// types have no protobuf encoding).
func istioClient(c *testenv.Cluster) (istioclient.Interface, error) {
	cfg := rest.CopyConfig(c.RESTConfig())
	cfg.ContentType, cfg.AcceptContentTypes = runtime.ContentTypeJSON, runtime.ContentTypeJSON
	ic, err := istioclient.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("cluster %s: Istio client: %w", c.ID, err)
	}
	return ic, nil
}

// installPeerAuthCRD creates Istio's PeerAuthentication CRD in cluster c
// and waits until PeerAuthentications can be listed, as Istio's base chart
// would have before any control plane starts.
func installPeerAuthCRD(ctx context.Context, c *testenv.Cluster) error {
	f, err := os.Open(peerAuthCRDFile)
	if err != nil {
		return fmt.Errorf("Istio's PeerAuthentication CRD: %w", err)
	}
	defer func() { _ = f.Close() }()
	data, err := io.ReadAll(io.LimitReader(f, maxCRDFileBytes+1))
	if err != nil {
		return fmt.Errorf("read %s: %w", peerAuthCRDFile, err)
	}
	if len(data) > maxCRDFileBytes {
		return fmt.Errorf("%s is larger than %d bytes", peerAuthCRDFile, maxCRDFileBytes)
	}
	var obj map[string]any
	if err := yaml.Unmarshal(data, &obj); err != nil {
		return fmt.Errorf("%s: %w", peerAuthCRDFile, err)
	}
	dyn, err := dynamic.NewForConfig(c.RESTConfig())
	if err != nil {
		return fmt.Errorf("cluster %s: dynamic client: %w", c.ID, err)
	}
	if _, err := dyn.Resource(crdGVR).Create(ctx, &unstructured.Unstructured{Object: obj}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("cluster %s: create the PeerAuthentication CRD: %w", c.ID, err)
	}
	ic, err := istioClient(c)
	if err != nil {
		return err
	}
	return waitUntil(ctx, nil, "cluster "+c.ID+" serves PeerAuthentications", func(ctx context.Context) error {
		_, err := ic.SecurityV1().PeerAuthentications("").List(ctx, metav1.ListOptions{Limit: 1})
		return err
	})
}

// applyPeerAuthentication creates, or sets the mode of, PeerAuthentication
// ns/name without a selector (in the system namespace: mesh-wide).
func applyPeerAuthentication(ctx context.Context, c *testenv.Cluster, ns, name string, mode securityv1beta1.PeerAuthentication_MutualTLS_Mode) error {
	ic, err := istioClient(c)
	if err != nil {
		return err
	}
	pas := ic.SecurityV1().PeerAuthentications(ns)
	pa := &securityv1.PeerAuthentication{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
	pa.Spec.Mtls = &securityv1beta1.PeerAuthentication_MutualTLS{Mode: mode}
	_, err = pas.Create(ctx, pa, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		cur, getErr := pas.Get(ctx, name, metav1.GetOptions{})
		if getErr != nil {
			return fmt.Errorf("cluster %s: get PeerAuthentication %s/%s: %w", c.ID, ns, name, getErr)
		}
		cur.Spec.Mtls = &securityv1beta1.PeerAuthentication_MutualTLS{Mode: mode}
		_, err = pas.Update(ctx, cur, metav1.UpdateOptions{})
	}
	if err != nil {
		return fmt.Errorf("cluster %s: PeerAuthentication %s/%s %v: %w", c.ID, ns, name, mode, err)
	}
	return nil
}
