package cli

import (
	"fmt"
	"strings"

	"github.com/spf13/pflag"

	"github.com/causeway-mesh/causeway/internal/inject"
	"github.com/causeway-mesh/causeway/internal/server"
)

// DefaultWebhookAddr is where the injection webhook listens by default:
// istiod's port.
const DefaultWebhookAddr = ":15017"

// injectFlags are serve's sidecar injection flags.
type injectFlags struct {
	addr       string
	proxyImage string
	cni        bool
	native     nativeFlag
}

func (f *injectFlags) register(fl *pflag.FlagSet) {
	fl.StringVar(&f.addr, "webhook-addr", DefaultWebhookAddr, "listen address of the sidecar injection webhook (HTTPS with the control plane's serving certificate, paths "+
		inject.Path+" and "+inject.PathPrefix+"cluster/CLUSTER/net/NETWORK for remote clusters); empty disables it. See docs/injection.md")
	fl.StringVar(&f.proxyImage, "proxy-image", inject.DefaultProxyImage, "image of the injected istio-proxy and istio-init containers: Istio's proxyv2 as HUB/proxyv2:TAG, of the Istio version the control plane supports")
	fl.BoolVar(&f.cni, "injection-cni", false, "leave istio-init out of injected pods: Istio's CNI plugin sets up the traffic capture instead")
	f.native.register(fl)
}

func (f *injectFlags) apply(cfg *server.Config) error {
	if f.proxyImage == "" || strings.ContainsAny(f.proxyImage, " \t\n") {
		return fmt.Errorf("--proxy-image %q: give an image reference such as %s", f.proxyImage, inject.DefaultProxyImage)
	}
	cfg.WebhookAddr = f.addr
	cfg.Inject.ProxyImage = f.proxyImage
	cfg.Inject.CNI = f.cni
	f.native.apply(&cfg.Inject)
	return nil
}
