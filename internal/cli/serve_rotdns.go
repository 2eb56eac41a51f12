package cli

import (
	"fmt"
	"net"
	"time"

	"github.com/spf13/pflag"

	"github.com/causeway-mesh/causeway/internal/clusters"
	"github.com/causeway-mesh/causeway/internal/gatewaydns"
	"github.com/causeway-mesh/causeway/internal/server"
)

// rotationDNSFlags are the flags of `causeway serve` for remote-secret
// rotation and gateway hostnames (docs/multicluster-ops.md).
type rotationDNSFlags struct {
	swapTimeout time.Duration
	dnsServers  []string
	dnsRefresh  time.Duration
	dnsMinTTL   time.Duration
	dnsMaxTTL   time.Duration
	dnsTimeout  time.Duration
}

func (f *rotationDNSFlags) register(fl *pflag.FlagSet) {
	fl.DurationVar(&f.swapTimeout, "remote-secret-swap-timeout", clusters.DefaultSwapTimeout,
		"how long the new kubeconfig of a changed remote secret (a rotated token or CA, a moved server) may take to connect, authenticate and sync; "+
			"the cluster keeps its previous kubeconfig until then, and past it the change is refused (the credentials show as failing in status)")
	fl.StringArrayVar(&f.dnsServers, "gateway-dns-server", nil,
		"DNS server (HOST:PORT) that resolves gateway hostnames (LoadBalancer ingress hostnames, meshNetworks gateway addresses); repeatable, "+
			"asked in order. Default: the nameservers of /etc/resolv.conf. Names are asked as absolute names (no search domains)")
	fl.DurationVar(&f.dnsRefresh, "gateway-dns-refresh", gatewaydns.DefaultRefresh,
		"how often a gateway hostname whose TTL is unknown (its lookup failed) is asked again; a failed lookup keeps the last good addresses")
	fl.DurationVar(&f.dnsMinTTL, "gateway-dns-min-ttl", gatewaydns.DefaultMinTTL,
		"a gateway hostname is asked again no sooner than this after an answer, whatever its TTL")
	fl.DurationVar(&f.dnsMaxTTL, "gateway-dns-max-ttl", gatewaydns.DefaultMaxTTL,
		"a gateway hostname is asked again no later than this after an answer, whatever its TTL")
	fl.DurationVar(&f.dnsTimeout, "gateway-dns-timeout", gatewaydns.DefaultTimeout,
		"bound of one DNS query to one server")
}

// apply checks the flags and sets the rotation and gateway DNS settings in
// cfg.
func (f *rotationDNSFlags) apply(cfg *server.Config) error {
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"--remote-secret-swap-timeout", f.swapTimeout},
		{"--gateway-dns-refresh", f.dnsRefresh},
		{"--gateway-dns-min-ttl", f.dnsMinTTL},
		{"--gateway-dns-max-ttl", f.dnsMaxTTL},
		{"--gateway-dns-timeout", f.dnsTimeout},
	} {
		if d.v <= 0 {
			return fmt.Errorf("%s %s: want a positive duration", d.name, d.v)
		}
	}
	if f.dnsMaxTTL < f.dnsMinTTL {
		return fmt.Errorf("--gateway-dns-max-ttl %s is below --gateway-dns-min-ttl %s: raise it", f.dnsMaxTTL, f.dnsMinTTL)
	}
	for _, s := range f.dnsServers {
		if _, _, err := net.SplitHostPort(s); err != nil {
			return fmt.Errorf("--gateway-dns-server %q: %w: give HOST:PORT, e.g. 10.0.0.10:53", s, err)
		}
	}
	cfg.SwapTimeout = f.swapTimeout
	cfg.GatewayDNS = gatewaydns.Config{
		Servers: f.dnsServers,
		Refresh: f.dnsRefresh,
		MinTTL:  f.dnsMinTTL,
		MaxTTL:  f.dnsMaxTTL,
		Timeout: f.dnsTimeout,
	}
	return nil
}
