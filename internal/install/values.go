package install

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/causeway-mesh/causeway/internal/model"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	sigsjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"

	"github.com/causeway-mesh/causeway/internal/inject"
)

// Profile names what a manifest installs.
type Profile string

// The profiles of `causeway manifest generate --profile`.
const (
	// ProfilePrimary is a cluster that runs the control plane.
	ProfilePrimary Profile = "primary"
	// ProfileRemote is a cluster whose proxies use a primary's control
	// plane through the primary's east-west gateway: it runs no control
	// plane, only the istiod-remote Service and Endpoints that point at the
	// primary (what istioctl generates when remotePilotAddress is set) and
	// the account the primary's remote secret uses.
	ProfileRemote Profile = "remote"
	// ProfileEastWestGateway is a network's east-west gateway.
	ProfileEastWestGateway Profile = "eastwest-gateway"
)

// Profiles lists every profile, in the order the help shows them.
func Profiles() []Profile {
	return []Profile{ProfilePrimary, ProfileRemote, ProfileEastWestGateway}
}

// ParseProfile reads the --profile flag.
func ParseProfile(s string) (Profile, error) {
	p := Profile(s)
	if slices.Contains(Profiles(), p) {
		return p, nil
	}
	return "", fmt.Errorf("unknown profile %q: want primary, remote or eastwest-gateway", s)
}

// Conventions shared with Istio and with the rest of Causeway.
const (
	// LabelNetwork marks a namespace's (or a gateway Service's) network.
	LabelNetwork = "topology.istio.io/network"
	// LabelGatewayPort overrides a gateway Service's port (default 15443).
	LabelGatewayPort = "networking.istio.io/gatewayPort"
	// LabelMeshID records the mesh a cluster belongs to on its system
	// namespace; `causeway check` warns when clusters disagree. Istio keeps
	// its meshID in the mesh config; Causeway has none, so it is a label.
	LabelMeshID = "causeway.io/mesh-id"
	// LabelRevision is Istio's control plane revision label.
	LabelRevision = "istio.io/rev"
	// LabelIstio is the label Istio's gateways are selected by.
	LabelIstio = "istio"

	// ControlPlaneName is the control plane's Deployment, ServiceAccount
	// and Service (with "-REVISION" appended for a revision).
	ControlPlaneName = "istiod"
	// RemoteServiceName is the Service of a remote cluster that points at
	// the primary's control plane through its east-west gateway.
	RemoteServiceName = "istiod-remote"
	// GatewayName is the east-west gateway's Deployment and Service.
	GatewayName = "istio-eastwestgateway"
	// GatewayLabelValue is the istio= label of east-west gateways.
	GatewayLabelValue = "eastwestgateway"
	// ReaderName is the ServiceAccount of a remote cluster that
	// the primary's remote secret authenticates as (the account
	// `causeway remote-secret create` makes; the names must agree).
	ReaderName = "causeway-reader"

	// Ports of the control plane and the gateway.
	PortXDS          = 15010
	PortXDSTLS       = 15012
	PortDebug        = 15014
	PortGatewayTLS   = 15443
	PortGatewayAdmin = 15021

	// DefaultNamespace is the system namespace.
	DefaultNamespace = "istio-system"
	// DefaultTrustDomain is the SPIFFE trust domain.
	DefaultTrustDomain = "cluster.local"
	// DefaultImageRepository is where Causeway's image is published; the
	// tag is the binary's version.
	DefaultImageRepository = "ghcr.io/causeway-mesh/causeway"
)

// Values configure a generated installation: the schema of the file
// `causeway manifest generate -f values.yaml` reads. Every key is optional;
// the flags of the command set the same fields and override the file.
// Unknown keys are an error.
//
//	clusterID: cluster1            # --cluster-id: id of this cluster
//	network: network1              # --network: the cluster's network
//	meshID: mesh1                  # --mesh-id
//	namespace: istio-system        # --namespace: the system namespace
//	revision: 1-11-4               # --revision: names istiod-1-11-4, label istio.io/rev
//	trustDomain: cluster.local     # --trust-domain
//	image: ghcr.io/causeway-mesh/causeway:v1.0.0   # --image
//	imagePullPolicy: IfNotPresent
//	customHosts: [istiod.example.com]              # --custom-host: extra DNS SANs
//	remotePilotAddress: 192.0.2.10                 # --remote-pilot-address (remote)
//	caBundle: |                                    # --ca-bundle FILE: the mesh root, the webhook's caBundle
//	  -----BEGIN CERTIFICATE-----
//	webhookHost: eastwest.cluster1.example         # --webhook-host (remote): DNS name of the primary's gateway
//	noWebhook: false                               # --no-webhook: no MutatingWebhookConfiguration
//	proxyImage: docker.io/istio/proxyv2:1.31.4     # --proxy-image: Istio's gateway (imageKind istio)
//	controlPlane:
//	  replicas: 2
//	  resources: {requests: {cpu: 50m, memory: 300Mi}}
//	  nodeSelector: {kubernetes.io/os: linux}
//	gateway:
//	  replicas: 1
//	  resources: {requests: {cpu: 100m, memory: 128Mi}}
//	  serviceType: NodePort        # --gateway-service-type: LoadBalancer (default) or NodePort
//	  port: 15443                  # the tls port other networks dial
//	  nodePort: 31443              # fixed node port of tls (NodePort, LoadBalancer)
//	  exposeControlPlane: true     # --expose-control-plane: ports tls-istiod 15012, tls-webhook 15017
//	  xdsAddress: istiod.istio-system.svc:15010    # --xds-address
//	  serviceAnnotations: {traffic.istio.io/nodeSelector: '{"kubernetes.io/os":"linux"}'}
//	  imageKind: istio             # --gateway-image: causeway (default) or istio
type Values struct {
	ClusterID          string            `json:"clusterID,omitempty"`
	Network            string            `json:"network,omitempty"`
	MeshID             string            `json:"meshID,omitempty"`
	Namespace          string            `json:"namespace,omitempty"`
	Revision           string            `json:"revision,omitempty"`
	TrustDomain        string            `json:"trustDomain,omitempty"`
	Image              string            `json:"image,omitempty"`
	ImagePullPolicy    corev1.PullPolicy `json:"imagePullPolicy,omitempty"`
	CustomHosts        []string          `json:"customHosts,omitempty"`
	RemotePilotAddress string            `json:"remotePilotAddress,omitempty"`
	// CABundle is the mesh root (PEM) the API server verifies the
	// injection webhook with; empty leaves caBundle unset (see
	// docs/install.md: patch it once the control plane made its root).
	CABundle string `json:"caBundle,omitempty"`
	// WebhookHost is the DNS name a remote cluster's API server reaches
	// the primary's east-west gateway by, on port 15017; default the
	// remote pilot address when that is a DNS name.
	WebhookHost string `json:"webhookHost,omitempty"`
	// NoWebhook leaves the MutatingWebhookConfiguration out (no sidecar
	// injection by Causeway in this cluster).
	NoWebhook bool `json:"noWebhook,omitempty"`
	// ProxyImage is Istio's proxyv2 image, run by an east-west gateway of
	// gateway.imageKind istio; default the injector's proxy image.
	ProxyImage   string          `json:"proxyImage,omitempty"`
	ControlPlane ComponentValues `json:"controlPlane,omitzero"`
	Gateway      GatewayValues   `json:"gateway,omitzero"`
}

// ComponentValues size and place one Deployment.
type ComponentValues struct {
	// Replicas of the Deployment; 0 means the default: 2 for the control
	// plane (one leads, both serve: docs/replicas.md), 1 for the gateway.
	Replicas int32 `json:"replicas,omitempty"`
	// Resources replace the default requests and limits as a whole.
	Resources *corev1.ResourceRequirements `json:"resources,omitempty"`
	// NodeSelector of the pods.
	NodeSelector map[string]string `json:"nodeSelector,omitempty"`
}

// GatewayValues configure the east-west gateway.
type GatewayValues struct {
	ComponentValues `json:",inline"`
	// ServiceType is LoadBalancer (default) or NodePort, for clusters
	// without a load-balancer controller.
	ServiceType corev1.ServiceType `json:"serviceType,omitempty"`
	// Port is the Service port other networks dial (default 15443); any
	// other value is also written as the networking.istio.io/gatewayPort
	// label, which tells the control plane.
	Port int32 `json:"port,omitempty"`
	// NodePort fixes the node port of the tls port.
	NodePort int32 `json:"nodePort,omitempty"`
	// ExposeControlPlane adds the port tls-istiod (15012) through which
	// remote clusters' proxies reach this network's control plane
	// (primary-remote on several networks), and tls-webhook (15017)
	// through which their API servers reach the injection webhook; with
	// Causeway's gateway, its --expose-control-plane=0.0.0.0:15012 and
	// --expose-webhook=0.0.0.0:15017 that serve them.
	ExposeControlPlane bool `json:"exposeControlPlane,omitempty"`
	// XDSAddress is where the gateway gets its configuration; default
	// the control plane's Service in the system namespace, port 15010, or
	// istiod-remote's port 15012 when RemotePilotAddress is set (a remote
	// cluster's gateway, configured through the primary's gateway). An
	// address on port 15012 is dialed with TLS, verified against the mesh
	// root of the ConfigMap istio-ca-root-cert, mounted into the pod.
	XDSAddress string `json:"xdsAddress,omitempty"`
	// ServiceAnnotations go on the gateway Service (cloud load-balancer
	// settings, traffic.istio.io/nodeSelector).
	ServiceAnnotations map[string]string `json:"serviceAnnotations,omitempty"`
	// ImageKind is what runs the gateway: GatewayImageCauseway
	// ("causeway gateway", the default) or GatewayImageIstio (Istio's
	// proxyv2 in router mode, configured by the control plane).
	ImageKind string `json:"imageKind,omitempty"`
}

// The kinds of east-west gateway (--gateway-image).
const (
	GatewayImageCauseway = "causeway"
	GatewayImageIstio    = "istio"
)

// ParseValues reads a values file. Keys are case-sensitive; unknown or
// repeated keys are an error naming every such key by its path.
func ParseValues(data []byte) (Values, error) {
	js, err := yaml.YAMLToJSONStrict(data)
	if err != nil {
		return Values{}, err
	}
	var v Values
	strict, err := sigsjson.UnmarshalStrict(js, &v)
	if err != nil {
		return Values{}, err
	}
	if len(strict) > 0 {
		return Values{}, fmt.Errorf("%w (the keys are listed in `causeway manifest generate --help`)", errors.Join(strict...))
	}
	return v, nil
}

// ImageFor is the default image of a Causeway version.
func ImageFor(version string) string {
	return DefaultImageRepository + ":" + version
}

// DefaultControlPlaneReplicas is two replicas of `causeway serve`, so that a
// node drain or a crash leaves one serving (and leading) while the other
// comes back.
const DefaultControlPlaneReplicas = 2

// withDefaults fills what the values leave empty.
func (v Values) withDefaults() Values {
	if v.Namespace == "" {
		v.Namespace = DefaultNamespace
	}
	if v.TrustDomain == "" {
		v.TrustDomain = DefaultTrustDomain
	}
	if v.ImagePullPolicy == "" {
		v.ImagePullPolicy = corev1.PullIfNotPresent
	}
	if v.ControlPlane.Replicas == 0 {
		v.ControlPlane.Replicas = DefaultControlPlaneReplicas
	}
	if v.Gateway.Replicas == 0 {
		v.Gateway.Replicas = 1
	}
	if v.Gateway.ServiceType == "" {
		v.Gateway.ServiceType = corev1.ServiceTypeLoadBalancer
	}
	if v.Gateway.Port == 0 {
		v.Gateway.Port = PortGatewayTLS
	}
	if v.Gateway.ImageKind == "" {
		v.Gateway.ImageKind = GatewayImageCauseway
	}
	if v.ProxyImage == "" {
		v.ProxyImage = inject.DefaultProxyImage
	}
	return v
}

// validate checks the values of a profile (after withDefaults) and says
// every problem at once.
func (v Values) validate(p Profile) error {
	var errs []error
	errs = append(errs, v.validateIdentity(p)...)
	errs = append(errs, v.validateControlPlane(p)...)
	errs = append(errs, v.validateGateway()...)
	errs = append(errs, v.validateWebhook(p)...)
	errs = append(errs, v.validateGatewayImage()...)
	return errors.Join(errs...)
}

// validateIdentity checks the names the mesh is made of: cluster id,
// network, mesh id, namespace, revision and trust domain.
func (v Values) validateIdentity(p Profile) []error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	switch {
	case v.ClusterID == "" && p != ProfileRemote:
		bad("the cluster id is required (--cluster-id, or clusterID in the values file): the name the control plane knows this cluster by, e.g. cluster1")
	case v.ClusterID != "" && model.CheckClusterID(v.ClusterID) != nil:
		bad("%v", model.CheckClusterID(v.ClusterID))
	}
	if v.Network == "" && p == ProfileEastWestGateway {
		bad("the network is required for an east-west gateway (--network): the network whose traffic it admits")
	}
	if v.Network != "" {
		if msgs := validation.IsValidLabelValue(v.Network); len(msgs) > 0 {
			bad("network %q is not a valid label value: %s", v.Network, strings.Join(msgs, "; "))
		}
	}
	if v.MeshID != "" {
		if msgs := validation.IsValidLabelValue(v.MeshID); len(msgs) > 0 {
			bad("mesh id %q is not a valid label value: %s", v.MeshID, strings.Join(msgs, "; "))
		}
	}
	if msgs := validation.IsDNS1123Label(v.Namespace); len(msgs) > 0 {
		bad("namespace %q: %s", v.Namespace, strings.Join(msgs, "; "))
	}
	if v.Revision != "" {
		// istiod-REVISION must itself be a DNS label.
		if msgs := validation.IsDNS1123Label(ControlPlaneName + "-" + v.Revision); len(msgs) > 0 {
			bad("revision %q: %s-%s %s", v.Revision, ControlPlaneName, v.Revision, strings.Join(msgs, "; "))
		}
	}
	if msgs := validation.IsDNS1123Subdomain(v.TrustDomain); len(msgs) > 0 {
		bad("trust domain %q: %s", v.TrustDomain, strings.Join(msgs, "; "))
	}
	return errs
}

// validateControlPlane checks the control plane's image, custom hosts,
// replicas and, for a remote cluster, the primary's discovery address.
func (v Values) validateControlPlane(p Profile) []error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if v.Image == "" && p != ProfileRemote {
		bad("the image is required (--image)")
	}
	switch v.ImagePullPolicy {
	case corev1.PullAlways, corev1.PullIfNotPresent, corev1.PullNever:
	default:
		bad("imagePullPolicy %q: want Always, IfNotPresent or Never", v.ImagePullPolicy)
	}
	for _, h := range v.CustomHosts {
		if msgs := validation.IsDNS1123Subdomain(h); len(msgs) > 0 {
			bad("custom host %q is not a DNS name: %s", h, strings.Join(msgs, "; "))
		}
	}
	if p == ProfileRemote && v.RemotePilotAddress == "" {
		bad("a remote cluster needs the primary's discovery address (--remote-pilot-address): the address of the primary's east-west gateway, e.g. its LoadBalancer IP")
	}
	if v.RemotePilotAddress != "" {
		if _, _, err := parsePilotAddress(v.RemotePilotAddress); err != nil {
			errs = append(errs, err)
		}
	}
	if v.ControlPlane.Replicas < 0 {
		bad("controlPlane.replicas %d: want 1 or more", v.ControlPlane.Replicas)
	}
	return errs
}

// validateGateway checks the east-west gateway's replicas, Service type
// and ports.
func (v Values) validateGateway() []error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if v.Gateway.Replicas < 0 {
		bad("gateway.replicas %d: want 1 or more", v.Gateway.Replicas)
	}
	switch v.Gateway.ServiceType {
	case corev1.ServiceTypeLoadBalancer, corev1.ServiceTypeNodePort:
	default:
		bad("gateway service type %q: want LoadBalancer, or NodePort where no load-balancer controller runs", v.Gateway.ServiceType)
	}
	if v.Gateway.Port < 1 || v.Gateway.Port > 65535 {
		bad("gateway.port %d: want 1-65535", v.Gateway.Port)
	}
	if v.Gateway.NodePort < 0 || v.Gateway.NodePort > 65535 {
		bad("gateway.nodePort %d: want a port of the cluster's node-port range (30000-32767 by default)", v.Gateway.NodePort)
	}
	if v.Gateway.ExposeControlPlane && v.Gateway.Port == PortXDSTLS {
		bad("gateway.port %d is the control plane's port, which exposeControlPlane adds: choose another", v.Gateway.Port)
	}
	return errs
}

// validateGatewayImage checks which gateway image runs and the control
// plane address it is given.
func (v Values) validateGatewayImage() []error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	switch v.Gateway.ImageKind {
	case GatewayImageCauseway, GatewayImageIstio:
	default:
		bad("gateway image %q: want causeway (Causeway's gateway) or istio (Istio's proxyv2 in router mode)", v.Gateway.ImageKind)
	}
	if a := v.Gateway.XDSAddress; a != "" {
		if _, _, err := net.SplitHostPort(a); err != nil {
			bad("gateway.xdsAddress %q: want host:port", a)
		}
	}
	return errs
}

// parsePilotAddress splits --remote-pilot-address into a host (an IP or a
// DNS name) and whether it is an IP. A port, if given, must be 15012: the
// remote's istiod-remote Service is headless, so proxies dial the address
// itself on the Service's port and nothing translates another port.
func parsePilotAddress(s string) (host string, isIP bool, err error) {
	host = s
	if h, port, splitErr := net.SplitHostPort(s); splitErr == nil {
		n, convErr := strconv.Atoi(port)
		if convErr != nil || n != PortXDSTLS {
			return "", false, fmt.Errorf("remote pilot address %q: the port must be %d (or left out): proxies of the remote cluster dial istiod-remote.NAMESPACE.svc:%d, a headless Service whose address is the primary's gateway, so the gateway must expose the control plane on %d (eastwest-gateway --expose-control-plane)", s, PortXDSTLS, PortXDSTLS, PortXDSTLS)
		}
		host = h
	}
	if addr, perr := netip.ParseAddr(host); perr == nil {
		if addr.Zone() != "" || addr.IsUnspecified() {
			return "", false, fmt.Errorf("remote pilot address %q: want a routable IP or a DNS name", s)
		}
		return addr.String(), true, nil
	}
	if msgs := validation.IsDNS1123Subdomain(host); len(msgs) > 0 {
		return "", false, fmt.Errorf("remote pilot address %q is neither an IP nor a DNS name: %s", s, strings.Join(msgs, "; "))
	}
	return host, false, nil
}
