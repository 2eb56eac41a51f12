package check

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/causeway-mesh/causeway/internal/clusters"
	"github.com/causeway-mesh/causeway/internal/install"
)

// snapshot is what one cluster holds that the checks read. Gathering is
// the only part that talks to API servers; the rules read snapshots.
type snapshot struct {
	name string
	host string
	// apiErr: the API server did not answer /version; nothing else was
	// read.
	apiErr  error
	version string
	// skew is the API server's clock minus this machine's.
	skew time.Duration

	// ns is the system namespace, nil when it does not exist.
	ns    *corev1.Namespace
	nsErr error

	cacerts, caSecret *corev1.Secret
	secretsErr        error
	remoteSecrets     []remoteProbe

	// services of the system namespace.
	services    []corev1.Service
	servicesErr error
	// remoteEndpoints are the addresses of the istiod-remote Endpoints.
	remoteEndpoints []string
	// gateways are Services labeled topology.istio.io/network, any
	// namespace.
	gateways []gatewayInfo

	deployments    []appsv1.Deployment
	deploymentsErr error
	hpas           []autoscalingv2.HorizontalPodAutoscaler
	hpasErr        error

	injection injectionState
}

// gatewayInfo is a gateway Service with, for the NodePort kind, the nodes
// that run a ready endpoint of it.
type gatewayInfo struct {
	svc corev1.Service
	// readyNodes are the ready nodes (with an address) that run a ready
	// endpoint of the Service, sorted by name.
	readyNodes []nodeAddr
	// endpointsErr: its EndpointSlices could not be read.
	endpointsErr error
}

type nodeAddr struct {
	name, addr string
}

// remoteProbe is one kubeconfig of a remote secret and whether the
// cluster it names answered.
type remoteProbe struct {
	secret string // namespace/name
	key    string // data key: the cluster id
	server string
	// parseErr: the data is not a usable kubeconfig.
	parseErr error
	// reachErr: the server did not answer or refused the credentials.
	reachErr error
}

// gather reads one cluster. Only a failing /version makes it stop early;
// other failures are kept next to what they concern.
func gather(ctx context.Context, cfg Config, c Cluster) *snapshot {
	s := &snapshot{name: c.Name, host: c.Config.Host}
	rc := rest.CopyConfig(c.Config)
	rc.Timeout = cfg.Timeout
	s.version, s.skew, s.apiErr = serverVersion(ctx, rc, cfg.Now)
	if s.apiErr != nil {
		return s
	}
	cs, err := kubernetes.NewForConfig(rc)
	if err != nil {
		s.apiErr = err
		return s
	}
	ns := cfg.SystemNamespace

	s.ns, s.nsErr = cs.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
	if apierrors.IsNotFound(s.nsErr) {
		s.ns, s.nsErr = nil, nil
	}

	s.cacerts, s.secretsErr = getOptional(cs.CoreV1().Secrets(ns).Get(ctx, "cacerts", metav1.GetOptions{}))
	if s.secretsErr == nil {
		s.caSecret, s.secretsErr = getOptional(cs.CoreV1().Secrets(ns).Get(ctx, install.CASecretName, metav1.GetOptions{}))
	}
	if s.secretsErr == nil {
		var list *corev1.SecretList
		list, s.secretsErr = cs.CoreV1().Secrets(ns).List(ctx, metav1.ListOptions{LabelSelector: LabelMultiCluster + "=true"})
		if s.secretsErr == nil {
			s.remoteSecrets = probeRemoteSecrets(ctx, cfg, list.Items)
		}
	}

	var svcs *corev1.ServiceList
	if svcs, s.servicesErr = cs.CoreV1().Services(ns).List(ctx, metav1.ListOptions{}); s.servicesErr == nil {
		s.services = svcs.Items
	}
	if s.servicesErr == nil {
		s.servicesErr = gatherRemoteEndpoints(ctx, cs, ns, s)
	}
	if s.servicesErr == nil {
		s.servicesErr = gatherGateways(ctx, cs, s)
	}

	var deps *appsv1.DeploymentList
	if deps, s.deploymentsErr = cs.AppsV1().Deployments(ns).List(ctx, metav1.ListOptions{}); s.deploymentsErr == nil {
		s.deployments = deps.Items
	}
	var hpas *autoscalingv2.HorizontalPodAutoscalerList
	if hpas, s.hpasErr = cs.AutoscalingV2().HorizontalPodAutoscalers(ns).List(ctx, metav1.ListOptions{}); s.hpasErr == nil {
		s.hpas = hpas.Items
	}
	s.injection = gatherInjection(ctx, cs, ns)
	return s
}

func getOptional[T any](v *T, err error) (*T, error) {
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return v, nil
}

// versionInfo is the part of /version the check reads.
type versionInfo struct {
	GitVersion string `json:"gitVersion"`
}

// serverVersion asks the API server for /version and compares the Date
// header of its answer with now() taken halfway through the request.
func serverVersion(ctx context.Context, rc *rest.Config, now func() time.Time) (string, time.Duration, error) {
	hc, err := rest.HTTPClientFor(rc)
	if err != nil {
		return "", 0, fmt.Errorf("client: %w", err)
	}
	u, err := versionURL(rc.Host)
	if err != nil {
		return "", 0, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return "", 0, fmt.Errorf("request %s: %w", u, err)
	}
	start := now()
	resp, err := hc.Do(req)
	if err != nil {
		return "", 0, err
	}
	defer resp.Body.Close()
	mid := start.Add(now().Sub(start) / 2)
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	if err != nil {
		return "", 0, fmt.Errorf("read %s: %w", u, err)
	}
	if resp.StatusCode != http.StatusOK {
		return "", 0, fmt.Errorf("GET %s: %s: %s", u, resp.Status, strings.TrimSpace(string(body)))
	}
	var vi versionInfo
	if err := json.Unmarshal(body, &vi); err != nil {
		return "", 0, fmt.Errorf("GET %s: not a Kubernetes API server: %w", u, err)
	}
	var skew time.Duration
	if d, err := http.ParseTime(resp.Header.Get("Date")); err == nil {
		// Date drops the fraction of its second: the server's time was
		// half a second later on average. Within a second either way the
		// clocks agree as far as one request can tell.
		skew = d.Add(500 * time.Millisecond).Sub(mid)
		if skew.Abs() <= time.Second {
			skew = 0
		}
		skew = skew.Round(time.Second)
	}
	return vi.GitVersion, skew, nil
}

func versionURL(host string) (string, error) {
	if !strings.Contains(host, "://") {
		host = "https://" + host
	}
	u, err := url.Parse(host)
	if err != nil {
		return "", fmt.Errorf("API server address %q: %w", host, err)
	}
	return u.JoinPath("version").String(), nil
}

// probeRemoteSecrets parses every kubeconfig of the remote secrets and asks
// each server for /version and for one namespace (which the remote
// secret's account may list), with the configured timeout.
func probeRemoteSecrets(ctx context.Context, cfg Config, secrets []corev1.Secret) []remoteProbe {
	var probes []remoteProbe
	for i := range secrets {
		sec := &secrets[i]
		keys := make([]string, 0, len(sec.Data))
		for k := range sec.Data {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		name := sec.Namespace + "/" + sec.Name
		if len(keys) == 0 {
			probes = append(probes, remoteProbe{secret: name, parseErr: errors.New("the secret has no data: want one kubeconfig per key, the key being the cluster id")})
		}
		for _, k := range keys {
			probes = append(probes, probeRemote(ctx, cfg, name, k, sec.Data[k]))
		}
	}
	return probes
}

func probeRemote(ctx context.Context, cfg Config, secret, key string, kubeconfig []byte) remoteProbe {
	p := remoteProbe{secret: secret, key: key}
	// The kubeconfig is written by whoever may write Secrets in the
	// system namespace: it goes through the control plane's sanitizer, so
	// that it cannot run a plugin or read a file on this machine.
	rc, err := clusters.SanitizeKubeconfig(kubeconfig, cfg.KubeconfigPolicy)
	if err != nil {
		p.parseErr = err
		return p
	}
	p.server = rc.Host
	rc.Timeout = cfg.Timeout
	cs, err := kubernetes.NewForConfig(rc)
	if err != nil {
		p.parseErr = err
		return p
	}
	if _, err := cs.Discovery().ServerVersion(); err != nil {
		p.reachErr = err
		return p
	}
	if _, err := cs.CoreV1().Namespaces().List(ctx, metav1.ListOptions{Limit: 1}); err != nil {
		p.reachErr = err
	}
	return p
}

// gatherRemoteEndpoints reads the addresses of the istiod-remote
// Endpoints, when that Service exists.
func gatherRemoteEndpoints(ctx context.Context, cs kubernetes.Interface, ns string, s *snapshot) error {
	if !slices.ContainsFunc(s.services, func(svc corev1.Service) bool { return svc.Name == install.RemoteServiceName }) {
		return nil
	}
	eps, err := getOptional(cs.CoreV1().Endpoints(ns).Get(ctx, install.RemoteServiceName, metav1.GetOptions{}))
	if err != nil || eps == nil {
		return err
	}
	for _, ss := range eps.Subsets {
		for _, a := range ss.Addresses {
			s.remoteEndpoints = append(s.remoteEndpoints, a.IP)
		}
	}
	return nil
}

// gatherGateways lists the Services labeled with a network in every
// namespace and, for those reached through node ports, the ready nodes
// that run a ready endpoint of them.
func gatherGateways(ctx context.Context, cs kubernetes.Interface, s *snapshot) error {
	list, err := cs.CoreV1().Services(metav1.NamespaceAll).List(ctx, metav1.ListOptions{LabelSelector: install.LabelNetwork})
	if err != nil {
		return err
	}
	nodes := map[string]*corev1.Node{}
	for i := range list.Items {
		svc := &list.Items[i]
		g := gatewayInfo{svc: *svc}
		if svc.Spec.Type == corev1.ServiceTypeNodePort {
			g.readyNodes, g.endpointsErr = readyGatewayNodes(ctx, cs, svc, nodes)
		}
		s.gateways = append(s.gateways, g)
	}
	return nil
}

func readyGatewayNodes(ctx context.Context, cs kubernetes.Interface, svc *corev1.Service, cache map[string]*corev1.Node) ([]nodeAddr, error) {
	slicesList, err := cs.DiscoveryV1().EndpointSlices(svc.Namespace).List(ctx, metav1.ListOptions{
		LabelSelector: discoveryv1.LabelServiceName + "=" + svc.Name,
	})
	if err != nil {
		return nil, err
	}
	var out []nodeAddr
	for i := range slicesList.Items {
		for _, ep := range slicesList.Items[i].Endpoints {
			if (ep.Conditions.Ready != nil && !*ep.Conditions.Ready) || ep.NodeName == nil || *ep.NodeName == "" {
				continue
			}
			name := *ep.NodeName
			if slices.ContainsFunc(out, func(n nodeAddr) bool { return n.name == name }) {
				continue
			}
			node, ok := cache[name]
			if !ok {
				node, err = getOptional(cs.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{}))
				if err != nil {
					return nil, err
				}
				cache[name] = node
			}
			if addr := nodeAddress(node); addr != "" {
				out = append(out, nodeAddr{name: name, addr: addr})
			}
		}
	}
	slices.SortFunc(out, func(a, b nodeAddr) int { return strings.Compare(a.name, b.name) })
	return out, nil
}

// nodeAddress is a ready node's ExternalIP, else its InternalIP; "" for a
// missing or not ready node.
func nodeAddress(n *corev1.Node) string {
	if n == nil {
		return ""
	}
	ready := slices.ContainsFunc(n.Status.Conditions, func(c corev1.NodeCondition) bool {
		return c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue
	})
	if !ready {
		return ""
	}
	for _, t := range []corev1.NodeAddressType{corev1.NodeExternalIP, corev1.NodeInternalIP} {
		for _, a := range n.Status.Addresses {
			if a.Type == t && a.Address != "" {
				return a.Address
			}
		}
	}
	return ""
}
