package cli

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"

	"github.com/causeway-mesh/causeway/internal/gateway"
	"github.com/causeway-mesh/causeway/internal/install"
	"github.com/causeway-mesh/causeway/internal/pki"
	"github.com/causeway-mesh/causeway/internal/testkit"
)

// TestGatewayFlagsConfig: the primary-remote flags of `causeway gateway`
// reach gateway.Config, and misuse is refused with what to do.
func TestGatewayFlagsConfig(t *testing.T) {
	root, _, err := pki.NewRoot(pki.RootOptions{})
	if err != nil {
		t.Fatal(err)
	}
	rootFile := filepath.Join(t.TempDir(), "root-cert.pem")
	if err := os.WriteFile(rootFile, root, 0o600); err != nil {
		t.Fatal(err)
	}
	emptyFile := filepath.Join(t.TempDir(), "empty.pem")
	if err := os.WriteFile(emptyFile, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	base := gatewayFlags{
		xds: "istiod-remote.istio-system.svc:15012", network: "network2", clusterID: "cluster2",
		listen: gateway.DefaultListen, admin: gateway.DefaultAdmin, drain: time.Second, helloTimeout: time.Second, maxHellos: 8,
		nodeID: "router~10.2.0.100~gw-0.istio-system~istio-system.svc.cluster.local",
	}
	tests := []struct {
		name       string
		mut        func(*gatewayFlags)
		wantTLS    string // the server name verified; "" for plaintext
		wantExpose string
		wantHook   string
		wantErr    string
	}{
		{name: "plaintext", mut: func(f *gatewayFlags) { f.xds = "istiod.istio-system.svc:15010" }},
		{name: "TLS, the name from --xds", mut: func(f *gatewayFlags) { f.xdsRootCert = rootFile }, wantTLS: "istiod-remote.istio-system.svc"},
		{name: "TLS to an address, the name given", mut: func(f *gatewayFlags) {
			f.xds, f.xdsRootCert, f.xdsServerName = "192.0.2.10:15012", rootFile, "istiod-remote.istio-system.svc"
		}, wantTLS: "istiod-remote.istio-system.svc"},
		{name: "exposing the control plane", mut: func(f *gatewayFlags) { f.exposeCP = "0.0.0.0:15012" }, wantExpose: "0.0.0.0:15012"},
		{name: "exposing the webhook", mut: func(f *gatewayFlags) { f.exposeWebhook = "0.0.0.0:15017" }, wantHook: "0.0.0.0:15017"},
		{name: "server name without roots", mut: func(f *gatewayFlags) { f.xdsServerName = "istiod" }, wantErr: "need --xds-root-cert"},
		{name: "client certificate without roots", mut: func(f *gatewayFlags) { f.xdsCert, f.xdsKey = rootFile, rootFile }, wantErr: "need --xds-root-cert"},
		{name: "token without roots", mut: func(f *gatewayFlags) { f.xdsToken = rootFile }, wantErr: "need --xds-root-cert"},
		{name: "unreadable roots", mut: func(f *gatewayFlags) { f.xdsRootCert = rootFile + ".missing" }, wantErr: "--xds-root-cert: xDS root certificate"},
		{name: "roots without a certificate", mut: func(f *gatewayFlags) { f.xdsRootCert = emptyFile }, wantErr: "no PEM CERTIFICATE block"},
		{name: "roots from a device", mut: func(f *gatewayFlags) { f.xdsRootCert = os.DevNull }, wantErr: "is a device, not a regular file"},
		{name: "certificate without key", mut: func(f *gatewayFlags) { f.xdsRootCert, f.xdsCert = rootFile, rootFile }, wantErr: "both the certificate and its key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := base
			tt.mut(&f)
			cfg, err := f.config(testkit.DiscardLogger())
			if testkit.WantErr(t, err, tt.wantErr) {
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			gotTLS := ""
			if cfg.XDSTLS != nil {
				gotTLS = cfg.XDSTLS.ServerName
			}
			if gotTLS != tt.wantTLS || cfg.ExposeControlPlane != tt.wantExpose || cfg.XDS != f.xds {
				t.Errorf("TLS server name %q, expose %q, xds %q; want %q, %q, %q", gotTLS, cfg.ExposeControlPlane, cfg.XDS, tt.wantTLS, tt.wantExpose, f.xds)
			}
			if cfg.ExposeWebhook != tt.wantHook {
				t.Errorf("webhook %q, want %q", cfg.ExposeWebhook, tt.wantHook)
			}
		})
	}
}

// TestGeneratedGatewayArgsParse: the primary-remote gateways `causeway
// manifest generate` writes (exposing the control plane; a remote
// cluster's over TLS) are accepted by `causeway gateway`, flags included.
func TestGeneratedGatewayArgsParse(t *testing.T) {
	for _, v := range []install.Values{
		{ClusterID: "cluster1", Network: "network1", Image: "example.com/causeway:test", Gateway: install.GatewayValues{ExposeControlPlane: true}},
		{ClusterID: "cluster2", Network: "network2", Image: "example.com/causeway:test", RemotePilotAddress: "192.0.2.10"},
	} {
		objs, err := install.Generate(install.ProfileEastWestGateway, v)
		if err != nil {
			t.Fatal(err)
		}
		i := slices.IndexFunc(objs, func(o install.Object) bool { _, ok := o.(*appsv1.Deployment); return ok })
		args := objs[i].(*appsv1.Deployment).Spec.Template.Spec.Containers[0].Args
		cmd, rest, err := NewRootCommand().Find(args)
		if err != nil || cmd.Name() != "gateway" {
			t.Fatalf("%q: command %v, %v", args, cmd.Name(), err)
		}
		if err := cmd.ParseFlags(rest); err != nil {
			t.Errorf("`causeway gateway` refuses %q: %v", rest, err)
		}
		want := []string{"expose-control-plane", "expose-webhook"}
		if v.RemotePilotAddress != "" {
			want = []string{"xds-root-cert"}
		}
		for _, w := range want {
			if !cmd.Flags().Changed(w) {
				t.Errorf("%q does not set --%s", rest, w)
			}
		}
	}
}
