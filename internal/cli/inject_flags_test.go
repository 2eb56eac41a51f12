package cli

import (
	"io"
	"strings"
	"testing"

	"github.com/spf13/pflag"

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
		auto    bool
		wantErr string
	}{
		{name: "defaults", addr: ":15017", image: inject.DefaultProxyImage, auto: true},
		{name: "native auto", args: []string{"--native-sidecars=auto"}, addr: ":15017", image: inject.DefaultProxyImage, auto: true},
		{name: "native true", args: []string{"--native-sidecars=true"}, addr: ":15017", image: inject.DefaultProxyImage, native: true},
		{name: "native false", args: []string{"--native-sidecars=false"}, addr: ":15017", image: inject.DefaultProxyImage},
		{name: "native boolean spelling", args: []string{"--native-sidecars=0"}, addr: ":15017", image: inject.DefaultProxyImage},
		{name: "native boolean spelling on", args: []string{"--native-sidecars=T"}, addr: ":15017", image: inject.DefaultProxyImage, native: true},
		{name: "set", args: []string{"--webhook-addr=127.0.0.1:9443", "--proxy-image=example.com/istio/proxyv2:1.31.1", "--injection-cni", "--native-sidecars"},
			addr: "127.0.0.1:9443", image: "example.com/istio/proxyv2:1.31.1", cni: true, native: true},
		{name: "off", args: []string{"--webhook-addr="}, addr: "", image: inject.DefaultProxyImage, auto: true},
		{name: "empty image", args: []string{"--proxy-image="}, wantErr: "--proxy-image"},
		{name: "image with space", args: []string{"--proxy-image=a b"}, wantErr: "--proxy-image"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var f injectFlags
			cfg, ok := applyFlagGroup(t, f.register, f.apply, tt.args, tt.wantErr)
			if !ok {
				return
			}
			if cfg.WebhookAddr != tt.addr || cfg.Inject.ProxyImage != tt.image || cfg.Inject.CNI != tt.cni || cfg.Inject.NativeSidecars != tt.native ||
				cfg.Inject.NativeSidecarsAuto != tt.auto {
				t.Errorf("config: addr %q image %q cni %v native %v auto %v, want %q %q %v %v %v", cfg.WebhookAddr, cfg.Inject.ProxyImage,
					cfg.Inject.CNI, cfg.Inject.NativeSidecars, cfg.Inject.NativeSidecarsAuto, tt.addr, tt.image, tt.cni, tt.native, tt.auto)
			}
		})
	}
	// serve registers them.
	if newServeCommand().Flags().Lookup("webhook-addr") == nil {
		t.Error("serve has no --webhook-addr")
	}
}

func TestNativeSidecarsFlagRefusesOtherValues(t *testing.T) {
	var f injectFlags
	fl := pflag.NewFlagSet("serve", pflag.ContinueOnError)
	fl.SetOutput(io.Discard)
	f.register(fl)
	err := fl.Parse([]string{"--native-sidecars=sometimes"})
	if err == nil || !strings.Contains(err.Error(), "want auto, true or false") {
		t.Fatalf("error %v, want one naming the values", err)
	}
}
