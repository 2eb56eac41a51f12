// Package kubeconv converts Kubernetes API objects (k8s.io/api core/v1 and
// discovery/v1, and Istio's security.istio.io/v1 PeerAuthentication) into
// the inputs of the mesh model: it reads Istio's labels and
// annotations, checks what the API server would have checked for the fields
// the model relies on, and keeps nothing else. It is pure: no client, no
// cache, no logger, so both the live informers and the offline manifest
// loader share it.
//
// To stay cheap on the informers' hot path a result may share slices and
// maps (addresses, external IPs, node labels) with the object it was made
// from. Neither may be changed afterwards; informer objects never are.
package kubeconv

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"

	"github.com/causeway-mesh/causeway/internal/model"
)

// ErrNoServiceName is returned (wrapped) for an EndpointSlice without the
// kubernetes.io/service-name label. Such slices belong to no Service; live
// discovery skips them (errors.Is) while the manifest loader reports them.
var ErrNoServiceName = errors.New("no " + discoveryv1.LabelServiceName + " label")

// ErrFQDNSlice is returned (wrapped) for an EndpointSlice of address type
// FQDN: its addresses are names, not IPs, and the model (as Istio) only uses
// IPv4 and IPv6 slices.
var ErrFQDNSlice = errors.New("address type FQDN is not supported")

// Service converts a Service. Errors name the Service and say what to fix:
// a port out of range or an address that is not an IP. A bad
// networking.istio.io/gatewayPort label or traffic.istio.io/nodeSelector
// annotation does not drop the Service: it is ignored, as Istio ignores it
// (default port, no selector), and said in the result's Ignored. A headless
// Service (clusterIP None) gets an empty ClusterIP.
func Service(cluster model.ClusterID, s *corev1.Service) (*model.Service, error) {
	if s == nil {
		return nil, errors.New("kubeconv: nil Service")
	}
	out := &model.Service{
		Cluster:     cluster,
		Namespace:   s.Namespace,
		Name:        s.Name,
		Type:        model.ServiceType(s.Spec.Type),
		ExternalIPs: s.Spec.ExternalIPs,
		Network:     model.NetworkID(s.Labels[model.LabelNetwork]),
	}
	if out.Type == "" {
		out.Type = model.ServiceTypeClusterIP // the API server's default
	}
	if err := convertServiceSpec(out, s); err != nil {
		return nil, fmt.Errorf("service %s/%s/%s: %w", cluster, s.Namespace, s.Name, err)
	}
	return out, nil
}

// convertServiceSpec fills out from s: its cluster IP, Istio's gateway port
// label and node selector annotation, its ports, external IPs and load
// balancer addresses. An error says which field is wrong and how to fix it.
func convertServiceSpec(out *model.Service, s *corev1.Service) error {
	if ip := s.Spec.ClusterIP; ip != "" && ip != corev1.ClusterIPNone {
		if _, err := netip.ParseAddr(ip); err != nil {
			return fmt.Errorf("spec.clusterIP %q is not an IP address: set an IP, None or leave it out", ip)
		}
		out.ClusterIP = ip
	}
	readIstioMarks(out, s)
	ports, err := servicePorts(s.Spec.Ports)
	if err != nil {
		return err
	}
	out.Ports = ports
	for _, ip := range out.ExternalIPs {
		if _, err := netip.ParseAddr(ip); err != nil {
			return fmt.Errorf("spec.externalIPs: %q is not an IP address", ip)
		}
	}
	return readLoadBalancer(out, s.Status.LoadBalancer.Ingress)
}

// readIstioMarks reads the networking.istio.io/gatewayPort label and the
// traffic.istio.io/nodeSelector annotation; a bad one is ignored, as Istio
// ignores it, and said in out.Ignored.
func readIstioMarks(out *model.Service, s *corev1.Service) {
	if v, ok := s.Labels[model.LabelGatewayPort]; ok {
		p, err := ParseGatewayPort(v)
		if err != nil {
			out.Ignored = append(out.Ignored, err.Error())
		}
		out.GatewayPort = p
	}
	if v, ok := s.Annotations[model.AnnotationNodeSelect]; ok {
		sel, err := ParseNodeSelector(v)
		if err != nil {
			out.Ignored = append(out.Ignored, err.Error())
		}
		out.NodeSelector = sel
	}
}

// servicePorts converts a Service's ports (nil for none), checking each
// port, node port and target port.
func servicePorts(ports []corev1.ServicePort) ([]model.ServicePort, error) {
	var out []model.ServicePort
	if len(ports) > 0 {
		out = make([]model.ServicePort, len(ports))
	}
	for i := range ports {
		p := &ports[i]
		if p.Port < 1 || p.Port > 65535 {
			return nil, fmt.Errorf("spec.ports[%d] (%q): port %d is out of range: use 1-65535", i, p.Name, p.Port)
		}
		if p.NodePort < 0 || p.NodePort > 65535 {
			return nil, fmt.Errorf("spec.ports[%d] (%q): nodePort %d is out of range: use 1-65535 or leave it out", i, p.Name, p.NodePort)
		}
		sp := model.ServicePort{
			Name:     p.Name,
			Port:     uint32(p.Port),
			Protocol: string(p.Protocol),
			NodePort: uint32(p.NodePort),
		}
		if p.AppProtocol != nil {
			sp.AppProtocol = *p.AppProtocol
		}
		if p.TargetPort.StrVal != "" || p.TargetPort.IntVal != 0 {
			n, name, ok := targetPort(p.TargetPort.IntVal, p.TargetPort.StrVal)
			if !ok {
				return nil, fmt.Errorf("spec.ports[%d] (%q): targetPort %s is out of range: use 1-65535 or a container port name",
					i, p.Name, p.TargetPort.String())
			}
			sp.TargetPort, sp.TargetPortName = n, name
		}
		out[i] = sp
	}
	return out, nil
}

// readLoadBalancer adds the IPs and hostnames of a Service's load balancer
// ingress to out; an IP that does not parse is an error.
func readLoadBalancer(out *model.Service, ing []corev1.LoadBalancerIngress) error {
	for i := range ing {
		if ip := ing[i].IP; ip != "" {
			if _, err := netip.ParseAddr(ip); err != nil {
				return fmt.Errorf("status.loadBalancer.ingress[%d].ip %q is not an IP address", i, ip)
			}
			out.LoadBalancerIPs = append(out.LoadBalancerIPs, ip)
		}
		if h := ing[i].Hostname; h != "" {
			out.LoadBalancerHostnames = append(out.LoadBalancerHostnames, h)
		}
	}
	return nil
}

// ParseGatewayPort parses a networking.istio.io/gatewayPort label: a port
// number, 1-65535. On error it returns 0, the model's "default 15443", and
// an error that quotes the label (at most its first 64 bytes) and says why.
func ParseGatewayPort(v string) (uint32, error) {
	p, err := strconv.ParseUint(v, 10, 16)
	if err != nil || p == 0 {
		return 0, fmt.Errorf("label %s=%s is not a port number (1-65535): set it to the gateway's service port or remove it (default %d)",
			model.LabelGatewayPort, quote(v), model.DefaultGatewayPort)
	}
	return uint32(p), nil
}

// ParseNodeSelector parses a traffic.istio.io/nodeSelector annotation: a
// JSON object of node label keys and values. On error it returns nil (no
// selector: every node) and an error that quotes the annotation (at most its
// first 64 bytes) and says why.
func ParseNodeSelector(v string) (map[string]string, error) {
	var sel map[string]string
	err := json.Unmarshal([]byte(v), &sel)
	if err == nil && sel == nil {
		err = errors.New("not a JSON object")
	}
	if err != nil {
		return nil, fmt.Errorf("annotation %s=%s is not a JSON map of node labels (e.g. {\"kubernetes.io/os\": \"linux\"}): %w",
			model.AnnotationNodeSelect, quote(v), err)
	}
	return sel, nil
}

// quote quotes a label or annotation value for a message, cut to 64 bytes:
// Go syntax, so control characters cannot reach a terminal.
func quote(v string) string {
	const max = 64
	if len(v) > max {
		return strconv.Quote(v[:max]) + "..."
	}
	return strconv.Quote(v)
}

// targetPort splits an IntOrString target port into a number or a name. A
// string that is all digits counts as the number (the API server would have
// refused it as a name).
func targetPort(intVal int32, strVal string) (port uint32, name string, ok bool) {
	if strVal != "" {
		n, err := strconv.ParseUint(strVal, 10, 16)
		if err != nil {
			return 0, strVal, true
		}
		return uint32(n), "", n != 0
	}
	if intVal < 1 || intVal > 65535 {
		return 0, "", false
	}
	return uint32(intVal), "", true
}

// EndpointSlice converts an EndpointSlice. Its Service is the
// kubernetes.io/service-name label (missing: ErrNoServiceName). An endpoint
// with conditions.ready unset counts as ready, as the API documents. The
// target port of a slice port without a number is unknown, so such ports are
// left out. An FQDN slice gives ErrFQDNSlice.
func EndpointSlice(cluster model.ClusterID, es *discoveryv1.EndpointSlice) (*model.EndpointSlice, error) {
	if es == nil {
		return nil, errors.New("kubeconv: nil EndpointSlice")
	}
	name := func() string { return string(cluster) + "/" + es.Namespace + "/" + es.Name }
	svc := es.Labels[discoveryv1.LabelServiceName]
	if svc == "" {
		return nil, fmt.Errorf("endpointslice %s: %w: label it with the name of its Service", name(), ErrNoServiceName)
	}
	switch es.AddressType {
	case discoveryv1.AddressTypeIPv4, discoveryv1.AddressTypeIPv6:
	case discoveryv1.AddressTypeFQDN:
		return nil, fmt.Errorf("endpointslice %s: %w: use addressType IPv4 or IPv6", name(), ErrFQDNSlice)
	default:
		return nil, fmt.Errorf("endpointslice %s: addressType %q is not IPv4, IPv6 or FQDN", name(), es.AddressType)
	}
	out := &model.EndpointSlice{
		Cluster:     cluster,
		Namespace:   es.Namespace,
		Name:        es.Name,
		ServiceName: svc,
	}

	var err error
	if out.Ports, err = slicePorts(es.Ports); err != nil {
		return nil, fmt.Errorf("endpointslice %s: %w", name(), err)
	}
	if out.Endpoints, err = sliceEndpoints(es); err != nil {
		return nil, fmt.Errorf("endpointslice %s: %w", name(), err)
	}
	return out, nil
}

// slicePorts converts the ports of a slice that have a number (nil for
// none); a port without one has an unknown target port and is left out.
func slicePorts(ports []discoveryv1.EndpointPort) ([]model.EndpointPort, error) {
	numbered := 0
	for i := range ports {
		if ports[i].Port != nil {
			numbered++
		}
	}
	var out []model.EndpointPort
	if numbered > 0 {
		out = make([]model.EndpointPort, 0, numbered)
	}
	for i := range ports {
		p := &ports[i]
		if p.Port == nil {
			continue
		}
		if *p.Port < 1 || *p.Port > 65535 {
			return nil, fmt.Errorf("ports[%d]: port %d is out of range: use 1-65535", i, *p.Port)
		}
		ep := model.EndpointPort{Port: uint32(*p.Port)}
		if p.Name != nil {
			ep.Name = *p.Name
		}
		if p.Protocol != nil {
			ep.Protocol = string(*p.Protocol)
		}
		out = append(out, ep)
	}
	return out, nil
}

// sliceEndpoints converts the endpoints of a slice (nil for none); every
// address must be an IP of the slice's address type.
func sliceEndpoints(es *discoveryv1.EndpointSlice) ([]model.SliceEndpoint, error) {
	var out []model.SliceEndpoint
	if len(es.Endpoints) > 0 {
		out = make([]model.SliceEndpoint, len(es.Endpoints))
	}
	for i := range es.Endpoints {
		e := &es.Endpoints[i]
		for _, a := range e.Addresses {
			ip, err := netip.ParseAddr(a)
			if err != nil {
				return nil, fmt.Errorf("endpoints[%d]: address %q is not an IP address", i, a)
			}
			if ip.Is4() != (es.AddressType == discoveryv1.AddressTypeIPv4) {
				return nil, fmt.Errorf("endpoints[%d]: address %q is not of the slice's addressType %s", i, a, es.AddressType)
			}
		}
		se := model.SliceEndpoint{
			Addresses: e.Addresses,
			Ready:     e.Conditions.Ready == nil || *e.Conditions.Ready,
		}
		if e.NodeName != nil {
			se.NodeName = *e.NodeName
		}
		if e.Zone != nil {
			se.Zone = *e.Zone
		}
		if r := e.TargetRef; r != nil && r.Kind == "Pod" && (r.Namespace == "" || r.Namespace == es.Namespace) {
			se.Pod = r.Name
		}
		out[i] = se
	}
	return out, nil
}

// Pod converts a Pod. Its IPs are status.podIPs, or status.podIP for objects
// written without the list. A Pod has nothing the model could reject: an IP
// that does not parse is left out, as the API server would never store one.
func Pod(cluster model.ClusterID, p *corev1.Pod) *model.Pod {
	if p == nil {
		return nil
	}
	out := &model.Pod{
		Cluster:        cluster,
		Namespace:      p.Namespace,
		Name:           p.Name,
		Network:        model.NetworkID(p.Labels[model.LabelNetwork]),
		TLSMode:        p.Labels[model.LabelTLSMode],
		ServiceAccount: p.Spec.ServiceAccountName,
		NodeName:       p.Spec.NodeName,
		Labels:         p.Labels,
	}
	switch {
	case len(p.Status.PodIPs) > 0:
		out.IPs = make([]string, 0, len(p.Status.PodIPs))
		for _, ip := range p.Status.PodIPs {
			if validIP(ip.IP) {
				out.IPs = append(out.IPs, ip.IP)
			}
		}
	case validIP(p.Status.PodIP):
		out.IPs = []string{p.Status.PodIP}
	}
	return out
}

// Node converts a Node: its ExternalIP and InternalIP addresses (others,
// such as Hostname, are not dialed) and all its labels, which the model reads
// for locality and which a gateway's node selector may match, and its
// kubelet version, which decides native sidecars.
func Node(cluster model.ClusterID, n *corev1.Node) *model.Node {
	if n == nil {
		return nil
	}
	out := &model.Node{Cluster: cluster, Name: n.Name, Labels: n.Labels, KubeletVersion: n.Status.NodeInfo.KubeletVersion}
	var ext, in int
	for _, a := range n.Status.Addresses {
		switch a.Type {
		case corev1.NodeExternalIP:
			ext++
		case corev1.NodeInternalIP:
			in++
		}
	}
	if ext+in == 0 {
		return out
	}
	// One backing array for both lists.
	ips := make([]string, 0, ext+in)
	for _, t := range [2]corev1.NodeAddressType{corev1.NodeExternalIP, corev1.NodeInternalIP} {
		start := len(ips)
		for _, a := range n.Status.Addresses {
			if a.Type == t && validIP(a.Address) {
				ips = append(ips, a.Address)
			}
		}
		if len(ips) > start {
			if t == corev1.NodeExternalIP {
				out.ExternalIPs = ips[start:len(ips):len(ips)]
			} else {
				out.InternalIPs = ips[start:len(ips):len(ips)]
			}
		}
	}
	return out
}

// Namespace converts a Namespace: its topology.istio.io/network label, the
// cluster's default network when it is the system namespace.
func Namespace(cluster model.ClusterID, ns *corev1.Namespace) *model.Namespace {
	if ns == nil {
		return nil
	}
	return &model.Namespace{Cluster: cluster, Name: ns.Name, Network: model.NetworkID(ns.Labels[model.LabelNetwork])}
}

func validIP(s string) bool {
	if s == "" {
		return false
	}
	_, err := netip.ParseAddr(s)
	return err == nil
}
