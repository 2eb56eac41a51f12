package check

import (
	"cmp"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/causeway-mesh/causeway/internal/clusters"
	"github.com/causeway-mesh/causeway/internal/install"
	"github.com/causeway-mesh/causeway/internal/pki"
)

// evaluate applies every rule to the snapshots. Clusters whose API server
// did not answer get one failing line and take no part in the rest.
func evaluate(cfg Config, snaps []*snapshot) []Result {
	var (
		out  []Result
		live []*snapshot
	)
	for _, s := range snaps {
		if s.apiErr != nil {
			out = append(out, Result{Fail, s.name, CheckAPI,
				fmt.Sprintf("API server %s does not answer: %v", s.host, s.apiErr),
				fmt.Sprintf("check the kubeconfig, the network path and the credentials: kubectl --context %s version", s.name)})
			continue
		}
		out = append(out, Result{OK, s.name, CheckAPI, fmt.Sprintf("Kubernetes %s at %s", s.version, s.host), ""})
		live = append(live, s)
	}
	m := newMesh(cfg, live)
	for _, rule := range []func(*mesh) []Result{
		clockRule, networkRule, rootRule, gatewayRule, remoteSecretRule, servingCertRule, injectionRule, disabledGatewayRule, webhookRule, hpaRule,
	} {
		out = append(out, rule(m)...)
	}
	return out
}

// mesh is what the rules share: the snapshots and what is derived from
// them once.
type mesh struct {
	cfg   Config
	snaps []*snapshot
	// network of each cluster's system namespace ("" when unlabeled).
	network map[string]string
	// networks in the order clusters first name them.
	networks []string
	// controlPlanes of each cluster.
	controlPlanes map[string][]controlPlane
}

// controlPlane is a control plane Deployment and the DNS names its
// serving certificate covers.
type controlPlane struct {
	cluster string
	dep     *appsv1.Deployment
	sans    []string
}

func newMesh(cfg Config, snaps []*snapshot) *mesh {
	m := &mesh{cfg: cfg, snaps: snaps, network: map[string]string{}, controlPlanes: map[string][]controlPlane{}}
	for _, s := range snaps {
		if s.ns != nil {
			if n := s.ns.Labels[install.LabelNetwork]; n != "" {
				m.network[s.name] = n
				if !slices.Contains(m.networks, n) {
					m.networks = append(m.networks, n)
				}
			}
		}
		for i := range s.deployments {
			d := &s.deployments[i]
			if isControlPlane(d) {
				m.controlPlanes[s.name] = append(m.controlPlanes[s.name], controlPlane{cluster: s.name, dep: d, sans: servingNames(d, cfg.SystemNamespace)})
			}
		}
	}
	return m
}

// allControlPlanes in cluster order.
func (m *mesh) allControlPlanes() []controlPlane {
	var out []controlPlane
	for _, s := range m.snaps {
		out = append(out, m.controlPlanes[s.name]...)
	}
	return out
}

// isRemote: a cluster with the istiod-remote Service and no control plane
// of its own.
func (m *mesh) isRemote(s *snapshot) bool {
	return len(m.controlPlanes[s.name]) == 0 && slices.ContainsFunc(s.services, func(svc corev1.Service) bool {
		return svc.Name == install.RemoteServiceName
	})
}

// isControlPlane: a Deployment labeled app=istiod (Istio's and Causeway's
// control plane), or one running `causeway serve`.
func isControlPlane(d *appsv1.Deployment) bool {
	if d.Labels["app"] == install.ControlPlaneName {
		return true
	}
	for i := range d.Spec.Template.Spec.Containers {
		if args := d.Spec.Template.Spec.Containers[i].Args; len(args) > 0 && args[0] == "serve" {
			return true
		}
	}
	return false
}

func isGatewayDeployment(d *appsv1.Deployment) bool {
	return d.Labels[install.LabelIstio] == install.GatewayLabelValue || d.Labels["app"] == install.GatewayName
}

// servingNames are the DNS names of a control plane's serving certificate:
// the standard names Istio's istiod (and Causeway) always include, then
// the --custom-host arguments and Istio's ISTIOD_CUSTOM_HOST variable.
func servingNames(d *appsv1.Deployment, ns string) []string {
	names := []string{
		install.ControlPlaneName + "." + ns + ".svc",
		install.RemoteServiceName + "." + ns + ".svc",
		"istio-pilot." + ns + ".svc",
	}
	add := func(h string) {
		if h = strings.TrimSpace(h); h != "" && !slices.Contains(names, h) {
			names = append(names, h)
		}
	}
	for ci := range d.Spec.Template.Spec.Containers {
		c := &d.Spec.Template.Spec.Containers[ci]
		for i, a := range c.Args {
			switch {
			case strings.HasPrefix(a, "--custom-host="):
				add(strings.TrimPrefix(a, "--custom-host="))
			case a == "--custom-host" && i+1 < len(c.Args):
				add(c.Args[i+1])
			}
		}
		for _, e := range c.Env {
			if e.Name == "ISTIOD_CUSTOM_HOST" {
				for h := range strings.SplitSeq(e.Value, ",") {
					add(h)
				}
			}
		}
	}
	return names
}

// covers reports whether a certificate with these DNS names is valid for
// host (a leading "*." matches one label).
func covers(sans []string, host string) bool {
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	for _, s := range sans {
		s = strings.ToLower(s)
		if s == host {
			return true
		}
		if rest, ok := strings.CutPrefix(s, "*."); ok {
			if _, after, found := strings.Cut(host, "."); found && after == rest {
				return true
			}
		}
	}
	return false
}

func clockRule(m *mesh) []Result {
	var out []Result
	for _, s := range m.snaps {
		d := s.skew
		var how string
		switch {
		case d > 0:
			how = fmt.Sprintf("%s ahead of", d)
		case d < 0:
			how = fmt.Sprintf("%s behind", -d)
		default:
			how = "within 1s of"
		}
		msg := "API server clock is " + how + " this machine's"
		const fix = "certificates and tokens are checked against the clock: sync the clocks with NTP (chrony, systemd-timesyncd) on the API server's hosts and on this machine"
		switch abs := d.Abs(); {
		case abs > SkewFail:
			out = append(out, Result{Fail, s.name, CheckClock, msg + fmt.Sprintf(" (more than %s)", SkewFail), fix})
		case abs > SkewWarn:
			out = append(out, Result{Warn, s.name, CheckClock, msg + fmt.Sprintf(" (more than %s)", SkewWarn), fix})
		default:
			out = append(out, Result{OK, s.name, CheckClock, msg, ""})
		}
	}
	return out
}

func networkRule(m *mesh) []Result {
	ns := m.cfg.SystemNamespace
	var out []Result
	meshIDs := map[string][]string{}
	for _, s := range m.snaps {
		switch {
		case s.nsErr != nil:
			out = append(out, Result{Fail, s.name, CheckNetwork, fmt.Sprintf("cannot read namespace %s: %v", ns, s.nsErr), "the check needs get on namespaces"})
			continue
		case s.ns == nil:
			out = append(out, Result{Fail, s.name, CheckNetwork, fmt.Sprintf("namespace %s does not exist", ns),
				fmt.Sprintf("causeway manifest generate --profile primary --cluster-id %s --network NETWORK --only Namespace | kubectl --context %s apply -f -", s.name, s.name)})
			continue
		}
		if id := s.ns.Labels[install.LabelMeshID]; id != "" {
			meshIDs[id] = append(meshIDs[id], s.name)
		}
		fix := fmt.Sprintf("kubectl --context %s label namespace %s %s=NETWORK", s.name, ns, install.LabelNetwork)
		net := m.network[s.name]
		switch {
		case net == "" && len(m.networks) == 0:
			out = append(out, Result{Warn, s.name, CheckNetwork,
				fmt.Sprintf("namespace %s has no %s label: all clusters are taken as one network, right only if their pods reach each other directly", ns, install.LabelNetwork), fix})
		case net == "":
			out = append(out, Result{Fail, s.name, CheckNetwork,
				fmt.Sprintf("namespace %s has no %s label while other clusters have one: this cluster's endpoints get no network and are handed to every network as directly reachable", ns, install.LabelNetwork), fix})
		default:
			msg := "network " + net
			var shared []string
			for _, o := range m.snaps {
				if o != s && m.network[o.name] == net {
					shared = append(shared, o.name)
				}
			}
			if len(shared) > 0 {
				msg += fmt.Sprintf(" (shared with %s: fine when their pods reach each other directly)", strings.Join(shared, ", "))
			}
			out = append(out, Result{OK, s.name, CheckNetwork, msg, ""})
		}
	}
	if len(meshIDs) > 1 {
		ids := make([]string, 0, len(meshIDs))
		for id, cs := range meshIDs {
			ids = append(ids, fmt.Sprintf("%s (%s)", id, strings.Join(cs, ", ")))
		}
		slices.Sort(ids)
		for _, s := range m.snaps {
			if s.ns != nil && s.ns.Labels[install.LabelMeshID] != "" {
				out = append(out, Result{Warn, s.name, CheckNetwork,
					fmt.Sprintf("clusters disagree on the mesh id (%s): %s", install.LabelMeshID, strings.Join(ids, ", ")),
					"regenerate every cluster's manifests with the same --mesh-id"})
			}
		}
	}
	return out
}

// rootOf is the self-signed roots (SHA-256 fingerprints) of a cluster's
// plug-in CA and the subject of the first.
type rootOf struct {
	cluster string
	fps     []string
	subject string
}

func rootRule(m *mesh) []Result {
	var (
		out   []Result
		roots []rootOf
	)
	for _, s := range m.snaps {
		r, problem := clusterRoot(m, s)
		if problem != nil {
			out = append(out, *problem)
			continue
		}
		roots = append(roots, r)
	}
	if len(roots) == 0 {
		return out
	}
	return append(out, sharedRootResults(roots)...)
}

// clusterRoot is the root a cluster's plug-in CA chains to, or the result
// that says why there is none to compare (no cacerts, or a broken one).
func clusterRoot(m *mesh, s *snapshot) (rootOf, *Result) {
	certFix := fmt.Sprintf("causeway certs intermediate --root certs --cluster %s --apply --context %s (the control plane picks it up without a restart; workloads as they renew)", s.name, s.name)
	switch {
	case s.secretsErr != nil:
		return rootOf{}, &Result{Fail, s.name, CheckRootCA, fmt.Sprintf("cannot read secrets of %s: %v", m.cfg.SystemNamespace, s.secretsErr), "the check needs get and list on secrets of the system namespace"}
	case s.cacerts == nil && m.isRemote(s):
		return rootOf{}, &Result{OK, s.name, CheckRootCA, "no cacerts: a remote cluster, its workloads get certificates from the primary's CA", ""}
	case s.cacerts == nil && s.caSecret != nil:
		return rootOf{}, &Result{Warn, s.name, CheckRootCA, fmt.Sprintf("no cacerts Secret: the control plane signs with its own self-signed root (%s), which no other cluster trusts", install.CASecretName), certFix}
	case s.cacerts == nil:
		return rootOf{}, &Result{Warn, s.name, CheckRootCA, "no cacerts Secret: the control plane will make its own self-signed root, which no other cluster trusts", certFix}
	}
	b := pki.BundleFromData(s.cacerts.Data)
	infos, err := pki.Inspect(b.RootCert)
	if err != nil {
		return rootOf{}, &Result{Fail, s.name, CheckRootCA, fmt.Sprintf("cacerts %s: %v", pki.FileRootCert, err), certFix}
	}
	r := rootOf{cluster: s.name}
	for i := range infos {
		if in := &infos[i]; in.SelfSigned {
			r.fps = append(r.fps, in.SHA256)
			if r.subject == "" {
				r.subject = in.Subject
			}
		}
	}
	if len(r.fps) == 0 {
		return rootOf{}, &Result{Fail, s.name, CheckRootCA, fmt.Sprintf("cacerts %s holds no self-signed root", pki.FileRootCert), certFix}
	}
	chain := b.CertChain
	if len(chain) == 0 {
		chain = b.CACert
	}
	// At the cluster's time: what its control plane will see.
	if err := pki.Verify(chain, b.RootCert, pki.VerifyOptions{Now: m.cfg.Now().Add(s.skew)}); err != nil {
		return rootOf{}, &Result{Fail, s.name, CheckRootCA, fmt.Sprintf("cacerts does not chain to its root: %v", err), certFix}
	}
	return r, nil
}

// sharedRootResults says of each cluster whether it chains to the mesh's
// root, the one most clusters chain to.
func sharedRootResults(roots []rootOf) []Result {
	var out []Result
	// The mesh's root is the one most clusters chain to (the first
	// cluster's on a tie).
	count := map[string]int{}
	for _, r := range roots {
		for _, fp := range r.fps {
			count[fp]++
		}
	}
	best := roots[0].fps[0]
	for _, r := range roots {
		for _, fp := range r.fps {
			if count[fp] > count[best] {
				best = fp
			}
		}
	}
	var bestOwner rootOf
	for _, r := range roots {
		if slices.Contains(r.fps, best) {
			bestOwner = r
			break
		}
	}
	for _, r := range roots {
		if slices.Contains(r.fps, best) {
			out = append(out, Result{OK, r.cluster, CheckRootCA,
				fmt.Sprintf("cacerts chains to root %q (sha256 %s), shared by %d of %d clusters with cacerts", r.subject, short(best), count[best], len(roots)), ""})
			continue
		}
		out = append(out, Result{Fail, r.cluster, CheckRootCA,
			fmt.Sprintf("cacerts chains to root %q (sha256 %s), not to %s's root %q (sha256 %s): workloads of the two clusters will not trust each other", r.subject, short(r.fps[0]), bestOwner.cluster, bestOwner.subject, short(best)),
			fmt.Sprintf("make this cluster's intermediate from the mesh's one root: causeway certs intermediate --root certs --cluster %s --force --apply --context %s (the control plane picks it up without a restart; workloads as they renew)", r.cluster, r.cluster)})
	}
	return out
}

// short abbreviates a fingerprint.
func short(fp string) string {
	if len(fp) > 16 {
		return fp[:16] + "..."
	}
	return fp
}

// gatewayPort is a gateway Service's port other networks dial.
func gatewayPort(svc *corev1.Service) (int32, error) {
	v, ok := svc.Labels[install.LabelGatewayPort]
	if !ok {
		return install.PortGatewayTLS, nil
	}
	n, err := strconv.ParseInt(v, 10, 32)
	if err != nil || n < 1 || n > 65535 {
		return 0, fmt.Errorf("label %s=%q is not a port", install.LabelGatewayPort, v)
	}
	return int32(n), nil
}

// gatewayAddresses are the addresses other networks reach a gateway at,
// and how they were found; none with a reason when it has none.
func gatewayAddresses(g *gatewayInfo, port corev1.ServicePort) (addrs []string, how, reason string) {
	svc := g.svc
	addrs = append(addrs, svc.Spec.ExternalIPs...)
	switch svc.Spec.Type {
	case corev1.ServiceTypeLoadBalancer:
		for _, in := range svc.Status.LoadBalancer.Ingress {
			addrs = append(addrs, cmp.Or(in.IP, in.Hostname))
		}
		if len(addrs) == 0 {
			return nil, "", "LoadBalancer without an address: no load-balancer controller has given it one"
		}
		return addrs, fmt.Sprintf("LoadBalancer %s port %d", strings.Join(addrs, ", "), port.Port), ""
	case corev1.ServiceTypeNodePort:
		if len(addrs) > 0 {
			return addrs, fmt.Sprintf("externalIPs %s port %d", strings.Join(addrs, ", "), port.Port), ""
		}
		if g.endpointsErr != nil {
			return nil, "", fmt.Sprintf("cannot read its EndpointSlices: %v", g.endpointsErr)
		}
		if len(g.readyNodes) == 0 {
			return nil, "", fmt.Sprintf("NodePort %d, but no ready gateway pod runs on a ready node with an address: other networks have nowhere to send traffic", port.NodePort)
		}
		var on []string
		for _, n := range g.readyNodes {
			addrs = append(addrs, n.addr)
			on = append(on, fmt.Sprintf("%s (%s)", n.name, n.addr))
		}
		return addrs, fmt.Sprintf("NodePort %d on %s", port.NodePort, strings.Join(on, ", ")), ""
	default:
		if len(addrs) > 0 {
			return addrs, fmt.Sprintf("externalIPs %s port %d", strings.Join(addrs, ", "), port.Port), ""
		}
		return nil, "", fmt.Sprintf("type %s: not reachable from other networks", svc.Spec.Type)
	}
}

func gatewayRule(m *mesh) []Result {
	var out []Result
	withService := map[string]bool{}
	for _, s := range m.snaps {
		if s.servicesErr != nil {
			out = append(out, Result{Fail, s.name, CheckGateway, fmt.Sprintf("cannot read services: %v", s.servicesErr), "the check needs list on services, endpointslices and nodes"})
			continue
		}
		for gi := range s.gateways {
			g := &s.gateways[gi]
			withService[g.svc.Labels[install.LabelNetwork]] = true
			out = append(out, gatewayResults(m, s, g)...)
		}
	}
	return append(out, gatewaylessNetworkResults(m, withService)...)
}

// gatewayResults checks one gateway Service of cluster s: its network
// label, the port other networks dial, and an address they can reach.
func gatewayResults(m *mesh, s *snapshot, g *gatewayInfo) []Result {
	var out []Result
	id := g.svc.Namespace + "/" + g.svc.Name
	net := g.svc.Labels[install.LabelNetwork]
	if own := m.network[s.name]; own != "" && own != net {
		out = append(out, Result{Warn, s.name, CheckGateway,
			fmt.Sprintf("gateway %s is labeled network %s in a cluster of network %s", id, net, own),
			"label the gateway Service with its own network, or label the namespace right"})
	}
	gp, err := gatewayPort(&g.svc)
	if err != nil {
		return append(out, Result{Fail, s.name, CheckGateway, fmt.Sprintf("gateway %s of %s: %v", id, net, err), "set the label to the Service port other networks dial, or remove it for 15443"})
	}
	i := slices.IndexFunc(g.svc.Spec.Ports, func(p corev1.ServicePort) bool { return p.Port == gp })
	if i < 0 {
		return append(out, Result{Fail, s.name, CheckGateway, fmt.Sprintf("gateway %s of %s has no port %d", id, net, gp),
			fmt.Sprintf("add the port or set %s to the port it has", install.LabelGatewayPort)})
	}
	_, how, reason := gatewayAddresses(g, g.svc.Spec.Ports[i])
	if reason != "" {
		fix := fmt.Sprintf("see its pods: kubectl --context %s -n %s get pods -l %s=%s -o wide", s.name, g.svc.Namespace, install.LabelIstio, install.GatewayLabelValue)
		if g.svc.Spec.Type == corev1.ServiceTypeLoadBalancer {
			fix = "install a load-balancer controller (MetalLB on bare metal), or regenerate the gateway with --gateway-service-type NodePort"
		} else if g.svc.Spec.Type != corev1.ServiceTypeNodePort {
			fix = "regenerate the gateway with --gateway-service-type LoadBalancer or NodePort"
		}
		return append(out, Result{Fail, s.name, CheckGateway, fmt.Sprintf("gateway %s of %s: %s", id, net, reason), fix})
	}
	return append(out, Result{OK, s.name, CheckGateway, fmt.Sprintf("gateway %s of %s: %s", id, net, how), ""})
}

// gatewaylessNetworkResults speaks of each network without a gateway
// Service: fine when it is the only network, a failure otherwise.
func gatewaylessNetworkResults(m *mesh, withService map[string]bool) []Result {
	var out []Result
	for _, net := range m.networks {
		if withService[net] {
			continue
		}
		var members []string
		for _, s := range m.snaps {
			if m.network[s.name] == net {
				members = append(members, s.name)
			}
		}
		if len(m.networks) == 1 {
			out = append(out, Result{OK, strings.Join(members, ","), CheckGateway, fmt.Sprintf("one network (%s): no east-west gateway needed", net), ""})
			continue
		}
		out = append(out, Result{Fail, strings.Join(members, ","), CheckGateway,
			fmt.Sprintf("network %s has no east-west gateway (no Service labeled %s=%s): other networks cannot reach its endpoints", net, install.LabelNetwork, net),
			fmt.Sprintf("causeway manifest generate --profile eastwest-gateway --cluster-id %s --network %s | kubectl --context %s apply -f -", members[0], net, members[0])})
	}
	return out
}

func remoteSecretRule(m *mesh) []Result {
	var out []Result
	for _, s := range m.snaps {
		if s.secretsErr != nil {
			continue // said by the root-ca check
		}
		if len(s.remoteSecrets) == 0 {
			if len(m.snaps) > 1 && len(m.controlPlanes[s.name]) > 0 {
				out = append(out, Result{Warn, s.name, CheckRemoteSecret,
					fmt.Sprintf("no remote secret (label %s=true) in %s: the control plane sees only its own cluster", LabelMultiCluster, m.cfg.SystemNamespace),
					fmt.Sprintf("causeway remote-secret create --kubeconfig REMOTE --name REMOTE_ID | kubectl --context %s apply -f -", s.name)})
			}
			continue
		}
		for _, p := range s.remoteSecrets {
			fix := fmt.Sprintf("re-create it: causeway remote-secret create --kubeconfig REMOTE --name %s | kubectl --context %s apply -f -", cmp.Or(p.key, "REMOTE_ID"), s.name)
			switch {
			case p.parseErr != nil && p.key == "":
				out = append(out, Result{Fail, s.name, CheckRemoteSecret, fmt.Sprintf("secret %s: %v", p.secret, p.parseErr), fix})
			case errors.Is(p.parseErr, clusters.ErrKubeconfigRefused):
				// Nothing of it was used: neither the control plane nor
				// this command runs a plugin or reads a file a remote
				// secret names.
				out = append(out, Result{Fail, s.name, CheckRemoteSecret, fmt.Sprintf("secret %s key %s was not used: %v", p.secret, p.key, p.parseErr), fix})
			case p.parseErr != nil:
				out = append(out, Result{Fail, s.name, CheckRemoteSecret, fmt.Sprintf("secret %s key %s is not a usable kubeconfig: %v", p.secret, p.key, p.parseErr), fix})
			case apierrors.IsUnauthorized(p.reachErr):
				out = append(out, Result{Fail, s.name, CheckRemoteSecret, fmt.Sprintf("secret %s: cluster %s at %s refuses its credentials (token expired or revoked?)", p.secret, p.key, p.server), fix})
			case apierrors.IsForbidden(p.reachErr):
				out = append(out, Result{Fail, s.name, CheckRemoteSecret, fmt.Sprintf("secret %s: cluster %s at %s does not let its account list namespaces: %v", p.secret, p.key, p.server, p.reachErr), fix})
			case p.reachErr != nil:
				out = append(out, Result{Fail, s.name, CheckRemoteSecret, fmt.Sprintf("secret %s: cluster %s at %s is unreachable from this machine: %v", p.secret, p.key, p.server, p.reachErr),
					"make the server reachable from the control plane (and from here), or re-create the secret with the right --server"})
			default:
				out = append(out, Result{OK, s.name, CheckRemoteSecret, fmt.Sprintf("secret %s: cluster %s at %s answers", p.secret, p.key, p.server), ""})
			}
		}
	}
	return out
}

// selects reports whether a Service selects a Deployment's pods.
func selects(svc *corev1.Service, d *appsv1.Deployment) bool {
	return len(svc.Spec.Selector) > 0 && labels.SelectorFromSet(svc.Spec.Selector).Matches(labels.Set(d.Spec.Template.Labels))
}

func servingCertRule(m *mesh) []Result {
	var out []Result
	cps := m.allControlPlanes()
	// Every Service in front of a control plane names it: revisioned
	// proxies dial istiod-REVISION.NAMESPACE.svc.
	for _, s := range m.snaps {
		for _, cp := range m.controlPlanes[s.name] {
			out = append(out, serviceNameResults(m, s, cp)...)
		}
	}
	// Addresses given on the command line: every control plane must cover
	// them.
	for _, a := range m.cfg.DiscoveryAddresses {
		out = append(out, discoveryAddressResults(m, cps, a)...)
	}
	out = append(out, remotePilotResults(m, cps)...)
	return out
}

// customHostFix says how to make the serving certificate of cp cover host.
func customHostFix(ns string, cp controlPlane, host string) string {
	return fmt.Sprintf("add --custom-host=%s to the args of %s/%s (causeway manifest generate --custom-host %s; with --revision the revisioned name is added)", host, ns, cp.dep.Name, host)
}

// serviceNameResults checks that the serving certificate of cp covers the
// name of every Service of cluster s in front of it.
func serviceNameResults(m *mesh, s *snapshot, cp controlPlane) []Result {
	ns := m.cfg.SystemNamespace
	var out []Result
	var covered, missing []string
	for i := range s.services {
		svc := &s.services[i]
		if !selects(svc, cp.dep) {
			continue
		}
		host := svc.Name + "." + ns + ".svc"
		if covers(cp.sans, host) {
			covered = append(covered, host)
		} else {
			missing = append(missing, host)
		}
	}
	for _, host := range missing {
		out = append(out, Result{Fail, s.name, CheckServingCert,
			fmt.Sprintf("%s's serving certificate does not cover %s, the name of a Service in front of it: proxies that dial it fail the TLS handshake (\"x509: certificate is valid for ..., not %s\", the home lab's trouble)", cp.dep.Name, host, host),
			customHostFix(ns, cp, host)})
	}
	if len(missing) == 0 {
		out = append(out, Result{OK, s.name, CheckServingCert, fmt.Sprintf("%s's serving certificate covers its Services %s", cp.dep.Name, orNone(covered)), ""})
	}
	return out
}

// discoveryAddressResults checks that every control plane's serving
// certificate covers the discovery address a (--discovery-address).
func discoveryAddressResults(m *mesh, cps []controlPlane, a string) []Result {
	ns := m.cfg.SystemNamespace
	host := hostOf(a)
	if _, err := netip.ParseAddr(host); err == nil {
		return []Result{{Warn, "-", CheckServingCert,
			fmt.Sprintf("discovery address %s is an IP: proxies check the certificate against the name they dial, and control plane certificates carry DNS names", a),
			"give proxies a DNS name (istiod-remote.NAMESPACE.svc in remote clusters) and check that name"}}
	}
	if len(cps) == 0 {
		return []Result{{Warn, "-", CheckServingCert,
			fmt.Sprintf("discovery address %s: no control plane (Deployment labeled app=%s in %s) among the clusters checked", a, install.ControlPlaneName, ns),
			"include the primary cluster in the check"}}
	}
	var out []Result
	for _, cp := range cps {
		if covers(cp.sans, host) {
			out = append(out, Result{OK, cp.cluster, CheckServingCert, fmt.Sprintf("%s's serving certificate covers discovery address %s", cp.dep.Name, host), ""})
		} else {
			out = append(out, Result{Fail, cp.cluster, CheckServingCert,
				fmt.Sprintf("%s's serving certificate does not cover discovery address %s (it covers %s)", cp.dep.Name, host, strings.Join(cp.sans, ", ")),
				customHostFix(ns, cp, host)})
		}
	}
	return out
}

// remotePilotResults follows each remote cluster's istiod-remote to a
// primary's gateway: the address must be a gateway's, the gateway must
// expose 15012, and the primary's certificate must cover the name.
func remotePilotResults(m *mesh, cps []controlPlane) []Result {
	ns := m.cfg.SystemNamespace
	host := install.RemoteServiceName + "." + ns + ".svc"
	var out []Result
	for _, s := range m.snaps {
		if !m.isRemote(s) {
			continue
		}
		if len(cps) == 0 {
			out = append(out, Result{Warn, s.name, CheckServingCert,
				fmt.Sprintf("%s points at %s, but no primary (control plane) is among the clusters checked", install.RemoteServiceName, orNone(s.remoteEndpoints)),
				"include the primary cluster in the check"})
			continue
		}
		var problems []Result
		for _, cp := range cps {
			if !covers(cp.sans, host) {
				problems = append(problems, Result{Fail, s.name, CheckServingCert,
					fmt.Sprintf("%s/%s's serving certificate does not cover %s, the name this remote cluster's proxies dial", cp.cluster, cp.dep.Name, host),
					fmt.Sprintf("add --custom-host=%s to %s/%s", host, cp.cluster, cp.dep.Name)})
			}
		}
		if len(s.remoteEndpoints) == 0 {
			out = append(out, problems...)
			out = append(out, Result{Warn, s.name, CheckServingCert,
				fmt.Sprintf("%s has no address (a DNS name, or Endpoints missing): its target cannot be checked", install.RemoteServiceName),
				fmt.Sprintf("point it at the primary gateway's IP: causeway manifest generate --profile remote --remote-pilot-address IP ... | kubectl --context %s apply -f -", s.name)})
			continue
		}
		for _, addr := range s.remoteEndpoints {
			gw, cluster, exposes := m.gatewayAt(addr)
			switch {
			case gw == "":
				problems = append(problems, Result{Warn, s.name, CheckServingCert,
					fmt.Sprintf("%s points at %s, which is no gateway address of the clusters checked (the primary's gateway address changed?)", install.RemoteServiceName, addr),
					fmt.Sprintf("regenerate: causeway manifest generate --profile remote --remote-pilot-address <the primary gateway's address> ... | kubectl --context %s apply -f -", s.name)})
			case !exposes:
				problems = append(problems, Result{Fail, s.name, CheckServingCert,
					fmt.Sprintf("%s points at gateway %s of %s (%s), which has no port %d: proxies here cannot reach the control plane", install.RemoteServiceName, gw, cluster, addr, install.PortXDSTLS),
					fmt.Sprintf("regenerate %s's gateway with --expose-control-plane", cluster)})
			default:
				if len(problems) == 0 {
					out = append(out, Result{OK, s.name, CheckServingCert,
						fmt.Sprintf("%s -> %s, gateway %s of %s with port %d; the control plane's certificate covers %s", install.RemoteServiceName, addr, gw, cluster, install.PortXDSTLS, host), ""})
				}
			}
		}
		out = append(out, problems...)
	}
	return out
}

// gatewayAt finds the gateway Service at an address and whether it
// exposes the control plane's port.
func (m *mesh) gatewayAt(addr string) (gateway, cluster string, exposes15012 bool) {
	for _, s := range m.snaps {
		for gi := range s.gateways {
			g := &s.gateways[gi]
			gp, err := gatewayPort(&g.svc)
			if err != nil {
				continue
			}
			i := slices.IndexFunc(g.svc.Spec.Ports, func(p corev1.ServicePort) bool { return p.Port == gp })
			if i < 0 {
				continue
			}
			addrs, _, _ := gatewayAddresses(g, g.svc.Spec.Ports[i])
			if slices.Contains(addrs, addr) {
				exposes := slices.ContainsFunc(g.svc.Spec.Ports, func(p corev1.ServicePort) bool { return p.Port == install.PortXDSTLS })
				return g.svc.Namespace + "/" + g.svc.Name, s.name, exposes
			}
		}
	}
	return "", "", false
}

func hostOf(addr string) string {
	if h, _, err := net.SplitHostPort(addr); err == nil {
		return h
	}
	return strings.Trim(addr, "[]")
}

func orNone(s []string) string {
	if len(s) == 0 {
		return "(none)"
	}
	return strings.Join(s, ", ")
}

func injectionRule(m *mesh) []Result {
	ns := m.cfg.SystemNamespace
	var out []Result
	for _, s := range m.snaps {
		if s.ns == nil {
			continue // said by the network check
		}
		if s.ns.Labels["istio-injection"] == "disabled" {
			out = append(out, Result{Warn, s.name, CheckInjection,
				fmt.Sprintf("namespace %s is labeled istio-injection=disabled: gateways installed with Istio's injection template (image: auto, as gen-eastwest-gateway.sh makes them) get no proxy and never pull their image, the home lab's trouble; Causeway's own gateway is not injected and not affected", ns),
				fmt.Sprintf("kubectl --context %s label namespace %s istio-injection-", s.name, ns)})
			continue
		}
		out = append(out, Result{OK, s.name, CheckInjection, fmt.Sprintf("namespace %s does not disable injection", ns), ""})
	}
	return out
}

func hpaRule(m *mesh) []Result {
	ns := m.cfg.SystemNamespace
	var out []Result
	for _, s := range m.snaps {
		if s.hpasErr != nil {
			out = append(out, Result{Warn, s.name, CheckHPA, fmt.Sprintf("cannot list HorizontalPodAutoscalers of %s: %v", ns, s.hpasErr), "the check needs list on horizontalpodautoscalers"})
			continue
		}
		found := false
		for hi := range s.hpas {
			h := &s.hpas[hi]
			ref := h.Spec.ScaleTargetRef
			if ref.Kind != "Deployment" || !m.isMeshDeployment(s, ref.Name) {
				continue
			}
			found = true
			out = append(out, Result{Warn, s.name, CheckHPA,
				fmt.Sprintf("HorizontalPodAutoscaler %s/%s scales Deployment %s between %d and %d replicas: it overrides the replica count of the manifest (the home lab's leftover horizontalpodautoscaler/istiod-1-11-4 kept the replicas from changing)", ns, h.Name, ref.Name, derefOr(h.Spec.MinReplicas, 1), h.Spec.MaxReplicas),
				fmt.Sprintf("if it is a leftover: kubectl --context %s -n %s delete hpa %s", s.name, ns, h.Name)})
		}
		if !found {
			out = append(out, Result{OK, s.name, CheckHPA, "no HorizontalPodAutoscaler scales the control plane or gateway", ""})
		}
	}
	return out
}

// isMeshDeployment: the name is a control plane or gateway Deployment of
// the cluster, or a name those have (the HPA may outlive it).
func (m *mesh) isMeshDeployment(s *snapshot, name string) bool {
	for i := range s.deployments {
		if d := &s.deployments[i]; d.Name == name {
			return isControlPlane(d) || isGatewayDeployment(d)
		}
	}
	return name == install.ControlPlaneName || strings.HasPrefix(name, install.ControlPlaneName+"-") || name == install.GatewayName
}

func derefOr[T any](p *T, def T) T {
	if p == nil {
		return def
	}
	return *p
}
