package testenv

import (
	"context"
	_ "embed" // Istio's PeerAuthentication CRD
	"fmt"
	"time"

	istioclient "istio.io/client-go/pkg/clientset/versioned"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
)

// peerAuthCRD is Istio's PeerAuthentication CRD, copied unchanged from
// crd-all.gen.yaml of the istio.io/istio module tools/istio pins
// (manifests/charts/base/files/), so that tests of PeerAuthentications
// need no istiod build.
//
//go:embed testdata/peerauthentication-crd.yaml
var peerAuthCRD []byte

// IstioClient reads and writes the cluster's Istio objects (in JSON:
// Istio's types have no protobuf encoding).
func (c *Cluster) IstioClient() (istioclient.Interface, error) {
	cfg := rest.CopyConfig(c.config)
	cfg.ContentType, cfg.AcceptContentTypes = runtime.ContentTypeJSON, runtime.ContentTypeJSON
	ic, err := istioclient.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("cluster %s: Istio client: %w", c.ID, err)
	}
	return ic, nil
}

// InstallPeerAuthCRD creates Istio's PeerAuthentication CRD in the cluster
// (one already there is left as it is) and waits until PeerAuthentications
// can be listed, as Istio's base chart would have before any control plane
// starts.
func (c *Cluster) InstallPeerAuthCRD(ctx context.Context) error {
	if _, err := c.installCRDs(ctx, peerAuthCRD, "Istio's PeerAuthentication CRD"); err != nil {
		return err
	}
	ic, err := c.IstioClient()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, crdTimeout)
	defer cancel()
	ticker := time.NewTicker(pollInterval)
	defer ticker.Stop()
	for {
		_, err := ic.SecurityV1().PeerAuthentications("").List(ctx, metav1.ListOptions{Limit: 1})
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("cluster %s: PeerAuthentications not served before the deadline (last error: %w): %w", c.ID, err, ctx.Err())
		case <-ticker.C:
		}
	}
}
