package cli

import (
	"testing"

	"github.com/causeway-mesh/causeway/internal/inject"
)

func TestInjectFlags(t *testing.T) {
	for _, tt := range []struct {
		name    string
		args    []string
		addr    string
		image   string
		cni     bool
		native  bool
		wantErr string
	}{
		{name: "defaults", addr: ":15017", image: inject.DefaultProxyImage},
		{name: "set", args: []string{"--webhook-addr=127.0.0.1:9443", "--proxy-image=example.com/istio/proxyv2:1.31.1", "--injection-cni", "--native-sidecars"},
			addr: "127.0.0.1:9443", image: "example.com/istio/proxyv2:1.31.1", cni: true, native: true},
		{name: "off", args: []string{"--webhook-addr="}, addr: "", image: inject.DefaultProxyImage},
		{name: "empty image", args: []string{"--proxy-image="}, wantErr: "--proxy-image"},
		{name: "image with space", args: []string{"--proxy-image=a b"}, wantErr: "--proxy-image"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var f injectFlags
			cfg, ok := applyFlagGroup(t, f.register, f.apply, tt.args, tt.wantErr)
			if !ok {
				return
			}
			if cfg.WebhookAddr != tt.addr || cfg.Inject.ProxyImage != tt.image || cfg.Inject.CNI != tt.cni || cfg.Inject.NativeSidecars != tt.native {
				t.Errorf("config: addr %q image %q cni %v native %v, want %q %q %v %v", cfg.WebhookAddr, cfg.Inject.ProxyImage,
					cfg.Inject.CNI, cfg.Inject.NativeSidecars, tt.addr, tt.image, tt.cni, tt.native)
			}
		})
	}
	// serve registers them.
	if newServeCommand().Flags().Lookup("webhook-addr") == nil {
		t.Error("serve has no --webhook-addr")
	}
}
