package model

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/gaissmai/bart"
	"sigs.k8s.io/yaml"
)

// MeshNetworks is Istio's meshNetworks: which endpoints belong to which
// network, and the gateways of each network. ParseMeshNetworks builds it
// from YAML or JSON; a value built in code should pass Validate.
type MeshNetworks struct {
	Networks map[NetworkID]MeshNetwork
}

// MeshNetwork is one network of MeshNetworks.
type MeshNetwork struct {
	// Endpoints are the membership rules, in the order written.
	Endpoints []NetworkEndpoints
	// Gateways are the network's gateways, in the order written.
	Gateways []NetworkGateway
}

// NetworkEndpoints is one membership rule: exactly one of FromCIDR and
// FromRegistry is set.
type NetworkEndpoints struct {
	// FromCIDR puts every endpoint whose address is inside it in the network.
	FromCIDR netip.Prefix
	// FromRegistry puts every endpoint of that cluster in the network.
	FromRegistry ClusterID
}

// NetworkGateway is a gateway written in MeshNetworks: exactly one of
// RegistryServiceName and Address is set.
type NetworkGateway struct {
	// RegistryServiceName is the hostname of a Service whose external
	// addresses are gateways of the network.
	RegistryServiceName Host
	// Address is a fixed gateway address: an IP or a DNS name, resolved with
	// Config.Resolve.
	Address string
	// Port is the gateway port; for RegistryServiceName, the Service port.
	Port uint32
	// Locality is region/zone/subzone of the gateway, optional.
	Locality string
}

// The JSON shapes of Istio's meshNetworks. Istio's decoder (jsonpb) accepts
// both the lowerCamel JSON names and the proto field names, so both are read.
type rawMeshNetworks struct {
	Networks map[string]*rawNetwork `json:"networks"`
}

type rawNetwork struct {
	Endpoints []rawEndpoint `json:"endpoints"`
	Gateways  []rawGateway  `json:"gateways"`
}

type rawEndpoint struct {
	FromCidr          string `json:"fromCidr"`
	FromCidrProto     string `json:"from_cidr"`
	FromRegistry      string `json:"fromRegistry"`
	FromRegistryProto string `json:"from_registry"`
}

type rawGateway struct {
	RegistryServiceName      string          `json:"registryServiceName"`
	RegistryServiceNameProto string          `json:"registry_service_name"`
	Address                  string          `json:"address"`
	Port                     json.RawMessage `json:"port"`
	Locality                 string          `json:"locality"`
}

const meshNetworksShape = "expected networks: {NAME: {endpoints: [{fromCidr: CIDR} or {fromRegistry: CLUSTER}], gateways: [{address: IP or registryServiceName: HOST, port: PORT, locality: R/Z/S}]}}"

// ParseMeshNetworks parses Istio's meshNetworks YAML or JSON and validates
// it (see Validate). Unknown fields are rejected, as a misspelled field would
// otherwise silently change which network an endpoint is in. Empty input is
// an empty MeshNetworks. Errors name the network and the entry.
func ParseMeshNetworks(data []byte) (*MeshNetworks, error) {
	var raw rawMeshNetworks
	if len(bytes.TrimSpace(data)) > 0 {
		if err := yaml.UnmarshalStrict(data, &raw); err != nil {
			return nil, fmt.Errorf("meshNetworks: cannot parse: %w (%s)", err, meshNetworksShape)
		}
	}
	mn := &MeshNetworks{Networks: make(map[NetworkID]MeshNetwork, len(raw.Networks))}
	var errs []error
	for _, name := range slices.Sorted(maps.Keys(raw.Networks)) {
		rn := raw.Networks[name]
		var n MeshNetwork
		if rn != nil {
			var nerrs []error
			n, nerrs = convertNetwork(name, rn)
			errs = append(errs, nerrs...)
		}
		mn.Networks[NetworkID(name)] = n
	}
	// Validate what could be converted too, so that one run reports every
	// mistake.
	if err := errors.Join(append(errs, mn.Validate())...); err != nil {
		return nil, err
	}
	return mn, nil
}

// convertNetwork turns the JSON shape into MeshNetwork, reporting what cannot
// be represented (bad CIDR, port, both spellings of a field). Entries that
// fail are dropped from the result; the caller returns the errors.
func convertNetwork(name string, rn *rawNetwork) (MeshNetwork, []error) {
	var n MeshNetwork
	var errs []error
	for i, re := range rn.Endpoints {
		where := fmt.Sprintf("meshNetworks: network %q endpoints[%d]", name, i)
		cidr, err := oneSpelling(re.FromCidr, re.FromCidrProto, "fromCidr", "from_cidr")
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", where, err))
			continue
		}
		reg, err := oneSpelling(re.FromRegistry, re.FromRegistryProto, "fromRegistry", "from_registry")
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", where, err))
			continue
		}
		ep := NetworkEndpoints{FromRegistry: ClusterID(reg)}
		if cidr != "" {
			p, err := parseCIDR(cidr)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: fromCidr %q is not a CIDR (like 10.1.0.0/16) or an IP: %w", where, cidr, err))
				continue
			}
			ep.FromCIDR = p
		}
		n.Endpoints = append(n.Endpoints, ep)
	}
	for i, rg := range rn.Gateways {
		where := fmt.Sprintf("meshNetworks: network %q gateways[%d]", name, i)
		svc, err := oneSpelling(rg.RegistryServiceName, rg.RegistryServiceNameProto, "registryServiceName", "registry_service_name")
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", where, err))
			continue
		}
		port, err := parsePort(rg.Port)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", where, err))
			continue
		}
		n.Gateways = append(n.Gateways, NetworkGateway{
			RegistryServiceName: Host(svc),
			Address:             rg.Address,
			Port:                port,
			Locality:            rg.Locality,
		})
	}
	return n, errs
}

func oneSpelling(camel, proto, camelName, protoName string) (string, error) {
	if camel != "" && proto != "" && camel != proto {
		return "", fmt.Errorf("both %s %q and %s %q are set: keep one", camelName, camel, protoName, proto)
	}
	if camel != "" {
		return camel, nil
	}
	return proto, nil
}

// parseCIDR accepts a CIDR or a single IP (a /32 or /128), as Istio does,
// and returns the masked prefix.
func parseCIDR(s string) (netip.Prefix, error) {
	if !strings.Contains(s, "/") {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return netip.Prefix{}, err
		}
		if a.Zone() != "" {
			return netip.Prefix{}, fmt.Errorf("zoned address %q", s)
		}
		return normPrefix(netip.PrefixFrom(a, a.BitLen())), nil
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	return normPrefix(p), nil
}

// normPrefix masks p and turns an IPv4-mapped IPv6 prefix into the IPv4
// prefix it stands for, as endpoint addresses are looked up unmapped.
func normPrefix(p netip.Prefix) netip.Prefix {
	if a := p.Addr(); a.Is4In6() && p.Bits() >= 96 {
		p = netip.PrefixFrom(a.Unmap(), p.Bits()-96)
	}
	return p.Masked()
}

// parsePort reads a port written as a JSON number or string (proto3 JSON
// allows both). A missing port is 0, which Validate rejects.
func parsePort(raw json.RawMessage) (uint32, error) {
	s := strings.TrimSpace(string(raw))
	if s == "" || s == "null" {
		return 0, nil
	}
	if strings.HasPrefix(s, `"`) {
		var str string
		if err := json.Unmarshal(raw, &str); err != nil {
			return 0, fmt.Errorf("port %s is not a number: %w", s, err)
		}
		s = strings.TrimSpace(str)
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("port %s is not a whole number in 1..65535: %w", s, err)
	}
	if v < 1 || v > 65535 {
		return 0, fmt.Errorf("port %d is out of range: use 1..65535", v)
	}
	return uint32(v), nil
}

type cidrRef struct {
	network NetworkID
	index   int
}

// Validate checks what ParseMeshNetworks promises: every network has a name;
// each endpoints entry has exactly one of FromCIDR and FromRegistry; CIDRs
// of different networks do not overlap; a registry is listed under one
// network only; each gateway has exactly one of RegistryServiceName (a DNS
// name) and Address (an IP or a DNS name), a port in 1..65535 and a locality
// of at most three parts. Errors name the network and the entry.
func (mn *MeshNetworks) Validate() error {
	if mn == nil {
		return nil
	}
	var errs []error
	var cidrs bart.Table[[]cidrRef]
	registries := map[ClusterID]cidrRef{}
	for _, name := range slices.Sorted(maps.Keys(mn.Networks)) {
		n := mn.Networks[name]
		if name == "" {
			errs = append(errs, errors.New(`meshNetworks: a network has an empty name: name every network (the empty network is where endpoints no rule matches are)`))
		} else if why := labelValueProblem(string(name)); why != "" {
			errs = append(errs, fmt.Errorf("meshNetworks: network name %s %s: a network name is also the value of the label %s, so it must be a Kubernetes label value (at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit)",
				strconv.QuoteToASCII(string(name)), why, LabelNetwork))
		}
		for i, ep := range n.Endpoints {
			where := fmt.Sprintf("meshNetworks: network %q endpoints[%d]", name, i)
			switch {
			case ep.FromCIDR.IsValid() && ep.FromRegistry != "":
				errs = append(errs, fmt.Errorf("%s: both fromCidr %s and fromRegistry %q are set: write one rule per entry", where, ep.FromCIDR, ep.FromRegistry))
				continue
			case !ep.FromCIDR.IsValid() && ep.FromRegistry == "":
				errs = append(errs, fmt.Errorf("%s: neither fromCidr nor fromRegistry is set: write one of them", where))
				continue
			case ep.FromRegistry != "":
				if strings.ContainsFunc(string(ep.FromRegistry), isSpaceOrSlash) {
					errs = append(errs, fmt.Errorf("%s: fromRegistry %q is not a cluster name", where, ep.FromRegistry))
					continue
				}
				if prev, ok := registries[ep.FromRegistry]; ok && prev.network != name {
					errs = append(errs, fmt.Errorf("%s: fromRegistry %q is already in network %q endpoints[%d]: a cluster belongs to one network; remove one of them", where, ep.FromRegistry, prev.network, prev.index))
					continue
				}
				registries[ep.FromRegistry] = cidrRef{network: name, index: i}
			default:
				p := normPrefix(ep.FromCIDR)
				if other, ok := overlapping(&cidrs, p, name); ok {
					errs = append(errs, fmt.Errorf("%s: fromCidr %s overlaps %s of network %q endpoints[%d]: an address belongs to one network; make the CIDRs disjoint", where, p, other.prefix, other.network, other.index))
					continue
				}
				cidrs.Modify(p, func(refs []cidrRef, _ bool) ([]cidrRef, bool) {
					return append(refs, cidrRef{network: name, index: i}), false
				})
			}
		}
		for i, gw := range n.Gateways {
			if err := validateGateway(gw); err != nil {
				errs = append(errs, fmt.Errorf("meshNetworks: network %q gateways[%d]: %w", name, i, err))
			}
		}
	}
	return errors.Join(errs...)
}

// labelValueProblem says why s is not a Kubernetes label value, "" if it is.
func labelValueProblem(s string) string {
	alnum := func(c byte) bool { return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' }
	switch {
	case len(s) > 63:
		return fmt.Sprintf("is %d characters long", len(s))
	case s != "" && (!alnum(s[0]) || !alnum(s[len(s)-1])):
		return "does not start and end with a letter or digit"
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !alnum(c) && c != '-' && c != '_' && c != '.' {
			return "holds a character other than letters, digits, '-', '_' and '.'"
		}
	}
	return ""
}

func isSpaceOrSlash(r rune) bool { return r == '/' || r == ' ' || r == '\t' || r == '\n' || r == '\r' }

type overlap struct {
	cidrRef
	prefix netip.Prefix
}

// overlapping finds a CIDR of another network than name that overlaps p:
// one of p's supernets or subnets in the table.
func overlapping(t *bart.Table[[]cidrRef], p netip.Prefix, name NetworkID) (overlap, bool) {
	for q, refs := range t.Supernets(p) {
		for _, r := range refs {
			if r.network != name {
				return overlap{cidrRef: r, prefix: q}, true
			}
		}
	}
	for q, refs := range t.Subnets(p) {
		for _, r := range refs {
			if r.network != name {
				return overlap{cidrRef: r, prefix: q}, true
			}
		}
	}
	return overlap{}, false
}

func validateGateway(gw NetworkGateway) error {
	var errs []error
	switch {
	case gw.RegistryServiceName != "" && gw.Address != "":
		errs = append(errs, fmt.Errorf("both registryServiceName %q and address %q are set: write one gateway per entry", gw.RegistryServiceName, gw.Address))
	case gw.RegistryServiceName == "" && gw.Address == "":
		errs = append(errs, errors.New("neither registryServiceName nor address is set: write one of them"))
	case gw.RegistryServiceName != "":
		if !isDNSName(string(gw.RegistryServiceName)) {
			errs = append(errs, fmt.Errorf("registryServiceName %q is not a hostname like NAME.NAMESPACE.svc.cluster.local", gw.RegistryServiceName))
		}
	default:
		if _, err := netip.ParseAddr(gw.Address); err != nil && !isDNSName(gw.Address) {
			errs = append(errs, fmt.Errorf("address %q is neither an IP nor a DNS name", gw.Address))
		}
	}
	if gw.Port < 1 || gw.Port > 65535 {
		errs = append(errs, fmt.Errorf("port %d is out of range: set port to 1..65535", gw.Port))
	}
	if strings.Count(gw.Locality, "/") > 2 {
		errs = append(errs, fmt.Errorf("locality %q has more than three parts: write region/zone/subzone", gw.Locality))
	}
	return errors.Join(errs...)
}

// isDNSName reports whether s is a DNS name: dot-separated labels of 1..63
// letters, digits and dashes, not starting or ending with a dash, 253
// characters at most, and not all digits (which would be a malformed IP).
func isDNSName(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	allDigits := true
	for label := range strings.SplitSeq(s, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := range len(label) {
			c := label[i]
			switch {
			case c >= '0' && c <= '9':
			case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c == '-':
				allDigits = false
			default:
				return false
			}
		}
	}
	return !allDigits
}
