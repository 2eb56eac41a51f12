package bench

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"

	"github.com/causeway-mesh/causeway/internal/model"
)

// Labels and defaults of the mesh conventions the expected views follow
// (Istio's; restated here rather than imported so that the check does not
// share the code it checks).
const (
	labelNetwork     = "topology.istio.io/network"
	labelGatewayPort = "networking.istio.io/gatewayPort"
	labelTLSMode     = "security.istio.io/tlsMode"
	tlsModeIstio     = "istio"
	defaultGwPort    = 15443
	domain           = "cluster.local"
	systemNamespace  = "istio-system"
)

// clusterObjects are the objects of one cluster that decide the views: the
// cluster's network (the system namespace's label), its Services and
// EndpointSlices, and which Pods speak mesh mTLS.
type clusterObjects struct {
	ID       string
	Network  string
	Services []*corev1.Service
	Slices   []*discoveryv1.EndpointSlice
	// MTLSPods holds "namespace/name" of every Pod labeled
	// security.istio.io/tlsMode=istio.
	MTLSPods map[string]bool
}

// views are the expected EDS resources of every network: network ->
// cluster name (outbound|PORT||HOST) -> canonical endpoints (see
// canonical).
type views map[string]map[string]string

// clusterName is the CDS and EDS name of a service port.
func clusterName(host string, port int32) string {
	return "outbound|" + strconv.Itoa(int(port)) + "||" + host
}

// expectedViews states the split-horizon rule for what the harness
// writes: endpoints of a proxy's own network as they are, weight 1 x scale;
// mTLS endpoints of another network with gateways replaced by its
// gateways (those in the endpoint's cluster if any), each gateway adding
// scale / (gateways chosen) per endpoint; other endpoints of such a network
// left out, as are all endpoints of a network without gateways (Causeway's
// default). scale is the least common multiple of every network's gateway
// count. Networks come from the system namespace's label only (no
// MeshNetworks), gateways from LoadBalancer ingress IPs and external IPs
// of Services labeled with a network. An endpoint is used when ready (or
// its readiness unknown) and matched to a Service port by port name.
// Locality is not compared.
func expectedViews(objs []clusterObjects) views {
	gateways := gatewaysByNetwork(objs)
	scale := 1
	for _, gws := range gateways {
		scale = model.LCM(scale, len(gws))
	}
	eps, names := endpointsByPort(objs)
	networks := map[string]bool{}
	for _, c := range objs {
		networks[c.Network] = true
	}
	out := views{}
	for n := range networks {
		vs := make(map[string]string, len(names))
		for k := range names {
			vs[clusterName(k.host, k.port)] = canonical(weightsFrom(n, eps[k], gateways, scale))
		}
		out[n] = vs
	}
	return out
}

// expGateway is one gateway address of a network.
type expGateway struct {
	addr    string
	port    int32
	cluster string
}

// expEndpoint is one endpoint of a service port.
type expEndpoint struct {
	addr    string
	port    int32
	network string
	cluster string
	mtls    bool
}

// expPortKey is a service port of a host.
type expPortKey struct {
	host string
	port int32
}

// gatewaysByNetwork is each network's gateways: the external IPs and
// LoadBalancer ingress IPs of Services labeled with the network, on the
// gateway port label or the default.
func gatewaysByNetwork(objs []clusterObjects) map[string][]expGateway {
	gateways := map[string][]expGateway{}
	for _, c := range objs {
		for _, svc := range c.Services {
			nw := svc.Labels[labelNetwork]
			if nw == "" {
				continue
			}
			port := int32(defaultGwPort)
			if p, err := strconv.ParseInt(svc.Labels[labelGatewayPort], 10, 32); err == nil {
				port = int32(p)
			}
			addrs := slices.Clone(svc.Spec.ExternalIPs)
			for _, in := range svc.Status.LoadBalancer.Ingress {
				if in.IP != "" {
					addrs = append(addrs, in.IP)
				}
			}
			for _, a := range addrs {
				gateways[nw] = append(gateways[nw], expGateway{addr: a, port: port, cluster: c.ID})
			}
		}
	}
	return gateways
}

// endpointsByPort is, over every cluster, each service port's endpoints:
// each address of each ready (or unknown) endpoint of a slice port with the
// service port's name. names holds every service port, with endpoints or
// not.
func endpointsByPort(objs []clusterObjects) (eps map[expPortKey][]expEndpoint, names map[expPortKey]bool) {
	eps = map[expPortKey][]expEndpoint{}
	names = map[expPortKey]bool{}
	for _, c := range objs {
		bySvc := map[string][]*discoveryv1.EndpointSlice{}
		for _, s := range c.Slices {
			key := s.Namespace + "/" + s.Labels[discoveryv1.LabelServiceName]
			bySvc[key] = append(bySvc[key], s)
		}
		for _, svc := range c.Services {
			if svc.Spec.Type == corev1.ServiceTypeExternalName {
				continue
			}
			host := svc.Name + "." + svc.Namespace + ".svc." + domain
			for _, sp := range svc.Spec.Ports {
				k := expPortKey{host, sp.Port}
				names[k] = true
				for _, s := range bySvc[svc.Namespace+"/"+svc.Name] {
					eps[k] = appendSliceEndpoints(eps[k], c, s, sp.Name)
				}
			}
		}
	}
	return eps, names
}

// appendSliceEndpoints appends the endpoints of slice s on its port named
// portName.
func appendSliceEndpoints(out []expEndpoint, c clusterObjects, s *discoveryv1.EndpointSlice, portName string) []expEndpoint {
	for _, pp := range s.Ports {
		if pp.Port == nil || ptrOr(pp.Name, "") != portName {
			continue
		}
		for _, e := range s.Endpoints {
			if e.Conditions.Ready != nil && !*e.Conditions.Ready {
				continue
			}
			mtls := e.TargetRef != nil && c.MTLSPods[s.Namespace+"/"+e.TargetRef.Name]
			for _, a := range e.Addresses {
				out = append(out, expEndpoint{addr: a, port: *pp.Port, network: c.Network, cluster: c.ID, mtls: mtls})
			}
		}
	}
	return out
}

// weightsFrom is what a proxy in network n sees of a port's endpoints: an
// endpoint of its own network (or of none) directly, weight scale; an mTLS
// endpoint of another network through that network's gateways in the
// endpoint's cluster (or all of them if none is), sharing scale.
func weightsFrom(n string, eps []expEndpoint, gateways map[string][]expGateway, scale int) map[string]int {
	weights := map[string]int{}
	for _, e := range eps {
		if e.network == n || e.network == "" {
			weights[hostPort(e.addr, e.port)] += scale
			continue
		}
		gws := gateways[e.network]
		if len(gws) == 0 || !e.mtls {
			continue
		}
		var chosen []expGateway
		for _, g := range gws {
			if g.cluster == e.cluster {
				chosen = append(chosen, g)
			}
		}
		if len(chosen) == 0 {
			chosen = gws
		}
		for _, g := range chosen {
			weights[hostPort(g.addr, g.port)] += scale / len(chosen)
		}
	}
	return weights
}

// canonical renders endpoints as "ADDR:PORT*WEIGHT" sorted and joined by
// commas: the form in which expected and received EDS are compared.
func canonical(weights map[string]int) string {
	entries := make([]string, 0, len(weights))
	for hp, w := range weights {
		entries = append(entries, hp+"*"+strconv.Itoa(w))
	}
	slices.Sort(entries)
	return strings.Join(entries, ",")
}

func hostPort(addr string, port int32) string {
	if a, err := netip.ParseAddr(addr); err == nil && a.Is6() {
		return "[" + addr + "]:" + strconv.Itoa(int(port))
	}
	return addr + ":" + strconv.Itoa(int(port))
}

func ptrOr[T any](p *T, def T) T {
	if p == nil {
		return def
	}
	return *p
}

// viewDiff describes how a received view differs from the expected one, in
// at most a few lines.
func viewDiff(want, got map[string]string) []string {
	var out []string
	keys := make([]string, 0, len(want)+len(got))
	for k := range want {
		keys = append(keys, k)
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			keys = append(keys, k)
		}
	}
	slices.SortFunc(keys, cmp.Compare)
	for _, k := range keys {
		w, inWant := want[k]
		g, inGot := got[k]
		switch {
		case !inGot:
			out = append(out, fmt.Sprintf("%s: missing (want %q)", k, w))
		case !inWant:
			out = append(out, fmt.Sprintf("%s: not expected (got %q)", k, g))
		case w != g:
			out = append(out, fmt.Sprintf("%s: got %q, want %q", k, g, w))
		}
	}
	return out
}
