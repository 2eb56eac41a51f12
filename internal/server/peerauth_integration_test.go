package server

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/types/known/structpb"
	securityv1beta1 "istio.io/api/security/v1beta1"
	typev1beta1 "istio.io/api/type/v1beta1"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	istioclient "istio.io/client-go/pkg/clientset/versioned"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/causeway-mesh/causeway/internal/envoy"
	"github.com/causeway-mesh/causeway/internal/kube"
	"github.com/causeway-mesh/causeway/internal/model"
	"github.com/causeway-mesh/causeway/internal/testenv"
	"github.com/causeway-mesh/causeway/internal/testkit"
	"github.com/causeway-mesh/causeway/internal/testreq"
)

// installPeerAuthCRD installs Istio's PeerAuthentication CRD in c (see
// testenv.Cluster.InstallPeerAuthCRD).
func installPeerAuthCRD(t *testing.T, c *testenv.Cluster) {
	t.Helper()
	if err := c.InstallPeerAuthCRD(t.Context()); err != nil {
		t.Fatal(err)
	}
}

func istioClient(t *testing.T, c *testenv.Cluster) istioclient.Interface {
	t.Helper()
	return must(c.IstioClient())(t)
}

// peerAuth is a PeerAuthentication: selector nil for a namespace- or
// mesh-wide one.
func peerAuth(ns, name string, selector map[string]string, mode securityv1beta1.PeerAuthentication_MutualTLS_Mode, ports map[uint32]securityv1beta1.PeerAuthentication_MutualTLS_Mode) *securityv1.PeerAuthentication {
	pa := &securityv1.PeerAuthentication{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
	setPeerAuthSpec(pa, selector, mode, ports)
	return pa
}

func setPeerAuthSpec(pa *securityv1.PeerAuthentication, selector map[string]string, mode securityv1beta1.PeerAuthentication_MutualTLS_Mode, ports map[uint32]securityv1beta1.PeerAuthentication_MutualTLS_Mode) {
	pa.Spec.Selector, pa.Spec.PortLevelMtls = nil, nil
	if selector != nil {
		pa.Spec.Selector = &typev1beta1.WorkloadSelector{MatchLabels: selector}
	}
	pa.Spec.Mtls = &securityv1beta1.PeerAuthentication_MutualTLS{Mode: mode}
	for p, m := range ports {
		if pa.Spec.PortLevelMtls == nil {
			pa.Spec.PortLevelMtls = map[uint32]*securityv1beta1.PeerAuthentication_MutualTLS{}
		}
		pa.Spec.PortLevelMtls[p] = &securityv1beta1.PeerAuthentication_MutualTLS{Mode: m}
	}
}

// inboundWatch is a captured sidecar's state-of-the-world ADS stream,
// subscribed to every listener; each response is ACKed and its
// virtualInbound listener summed up as "PORT=TRANSPORT,..." for each
// declared port, in chain order (see inboundSummary).
type inboundWatch struct {
	name    string
	updates chan string
}

// sidecar is a captured sidecar's identity: its pod and what pilot-agent
// says of it.
type sidecar struct {
	cluster, network, namespace, pod, ip string
	labels                               map[string]string
	ports                                map[string]uint32 // container port name -> port
}

func (s sidecar) node(t *testing.T) *corev3.Node {
	t.Helper()
	var podPorts []envoy.PodPort
	for name, p := range s.ports {
		podPorts = append(podPorts, envoy.PodPort{Name: name, Port: p, Protocol: "TCP"})
	}
	slices.SortFunc(podPorts, func(a, b envoy.PodPort) int { return int(a.Port) - int(b.Port) })
	pp := must(json.Marshal(podPorts))(t)
	labels := map[string]any{}
	for k, v := range s.labels {
		labels[k] = v
	}
	md := must(structpb.NewStruct(map[string]any{
		"NETWORK": s.network, "CLUSTER_ID": s.cluster, "NAMESPACE": s.namespace,
		"INTERCEPTION_MODE": "REDIRECT", "POD_PORTS": string(pp), "LABELS": labels,
	}))(t)
	return &corev3.Node{
		Id:       fmt.Sprintf("sidecar~%s~%s.%s~%s.svc.cluster.local", s.ip, s.pod, s.namespace, s.namespace),
		Metadata: md,
	}
}

func watchInbound(t *testing.T, addr string, s sidecar) *inboundWatch {
	t.Helper()
	ctx := t.Context()
	stream := testkit.DialADS(t.Context(), t, addr, s.node(t))
	if err := stream.Request(resourcev3.ListenerType); err != nil {
		t.Fatal(err)
	}
	w := &inboundWatch{name: s.cluster + "/" + s.namespace + "/" + s.pod, updates: make(chan string, 64)}
	go func() {
		for {
			resp, err := stream.Recv()
			if err != nil {
				return
			}
			for _, res := range resp.GetResources() {
				l := &listenerv3.Listener{}
				if res.UnmarshalTo(l) != nil || l.GetName() != envoy.VirtualInboundListenerName {
					continue
				}
				select {
				case w.updates <- inboundSummary(l):
				case <-ctx.Done():
					return
				}
			}
			if stream.ACK(resp) != nil {
				return
			}
		}
	}()
	return w
}

// inboundSummary: "PORT=TRANSPORT,TRANSPORT ..." of the chains that match
// one destination port other than 15006, ports in order.
func inboundSummary(l *listenerv3.Listener) string {
	byPort := map[uint32][]string{}
	var ports []uint32
	for _, fc := range l.GetFilterChains() {
		p := fc.GetFilterChainMatch().GetDestinationPort().GetValue()
		if p == 0 || p == 15006 {
			continue
		}
		if _, ok := byPort[p]; !ok {
			ports = append(ports, p)
		}
		byPort[p] = append(byPort[p], fc.GetFilterChainMatch().GetTransportProtocol())
	}
	slices.Sort(ports)
	var out []string
	for _, p := range ports {
		out = append(out, fmt.Sprintf("%d=%s", p, strings.Join(byPort[p], ",")))
	}
	return strings.Join(out, " ")
}

// await waits until the latest virtualInbound the sidecar received is want.
func (w *inboundWatch) await(t *testing.T, what, want string) {
	t.Helper()
	deadline := time.After(20 * time.Second)
	last := "(none)"
	for {
		select {
		case got := <-w.updates:
			last = got
			if got == want {
				return
			}
		case <-deadline:
			t.Fatalf("%s: %s's virtualInbound never became %q; last received %q", what, w.name, want, last)
		}
	}
}

// TestIntegrationPeerAuthentication: PeerAuthentications of real API
// servers reach captured sidecars through `causeway serve`: a STRICT
// mesh-wide policy, a PERMISSIVE namespace and a workload DISABLE with a
// STRICT port set each sidecar's virtualInbound chains; every create,
// update and delete reaches the sidecars it concerns. cluster2 has no
// PeerAuthentication CRD at first: it syncs, its workloads are PERMISSIVE
// (cluster1's mesh policy does not apply to them), /debug/clusters says
// so; once its CRD is installed, its own mesh policy applies to its
// sidecars only.
func TestIntegrationPeerAuthentication(t *testing.T) {
	testreq.NotShort(t, "integration test: starts two kube-apiservers")
	env := testenv.Start(t, testenv.Options{ClusterIDs: []string{"cluster1", "cluster2"}})
	c1, c2 := env.Cluster("cluster1"), env.Cluster("cluster2")
	ctx := t.Context()
	for i, c := range env.Clusters {
		network := fmt.Sprintf("net%d", i+1)
		must(testenv.CreateNamespace(ctx, c.Client(), "istio-system", map[string]string{model.LabelNetwork: network}))(t)
		for _, ns := range []string{"sample", "relaxed"} {
			must(testenv.CreateNamespace(ctx, c.Client(), ns, nil))(t)
		}
	}
	const (
		unset      = securityv1beta1.PeerAuthentication_MutualTLS_UNSET
		disable    = securityv1beta1.PeerAuthentication_MutualTLS_DISABLE
		permissive = securityv1beta1.PeerAuthentication_MutualTLS_PERMISSIVE
		strict     = securityv1beta1.PeerAuthentication_MutualTLS_STRICT
	)
	installPeerAuthCRD(t, c1)
	ic1 := istioClient(t, c1)
	pas1 := func(ns string) interface {
		Create(context.Context, *securityv1.PeerAuthentication, metav1.CreateOptions) (*securityv1.PeerAuthentication, error)
		Get(context.Context, string, metav1.GetOptions) (*securityv1.PeerAuthentication, error)
		Update(context.Context, *securityv1.PeerAuthentication, metav1.UpdateOptions) (*securityv1.PeerAuthentication, error)
		Delete(context.Context, string, metav1.DeleteOptions) error
	} {
		return ic1.SecurityV1().PeerAuthentications(ns)
	}
	must(pas1("istio-system").Create(ctx, peerAuth("istio-system", "default", nil, strict, nil), metav1.CreateOptions{}))(t)
	must(pas1("relaxed").Create(ctx, peerAuth("relaxed", "default", nil, permissive, nil), metav1.CreateOptions{}))(t)
	must(pas1("sample").Create(ctx, peerAuth("sample", "db", map[string]string{"app": "db"}, disable,
		map[uint32]securityv1beta1.PeerAuthentication_MutualTLS_Mode{9000: strict}), metav1.CreateOptions{}))(t)
	// update sets the spec of cluster1's policy NS/NAME.
	update := func(ns, name string, selector map[string]string, mode securityv1beta1.PeerAuthentication_MutualTLS_Mode, ports map[uint32]securityv1beta1.PeerAuthentication_MutualTLS_Mode) {
		t.Helper()
		pa := must(pas1(ns).Get(ctx, name, metav1.GetOptions{}))(t)
		setPeerAuthSpec(pa, selector, mode, ports)
		must(pas1(ns).Update(ctx, pa, metav1.UpdateOptions{}))(t)
	}

	applyRemoteSecret(t, c1, c2, c2.Host)
	rs := serveCluster(t, c1, Config{PeerAuthRecheck: 200 * time.Millisecond})
	testkit.Eventually(t, testkit.WaitTimeout, "clusters", func() string {
		return cmpStrings([]string{"cluster1 live", "cluster2 live"}, rs.clusterStates(t))
	})
	xds := rs.srv.XDSAddr().String()
	hw := watchInbound(t, xds, sidecar{cluster: "cluster1", network: "net1", namespace: "sample", pod: "helloworld-0", ip: "10.1.0.5",
		labels: map[string]string{"app": "helloworld"}, ports: map[string]uint32{"http": 5000}})
	web := watchInbound(t, xds, sidecar{cluster: "cluster1", network: "net1", namespace: "relaxed", pod: "web-0", ip: "10.1.0.6",
		labels: map[string]string{"app": "web"}, ports: map[string]uint32{"http": 8080}})
	db := watchInbound(t, xds, sidecar{cluster: "cluster1", network: "net1", namespace: "sample", pod: "db-0", ip: "10.1.0.7",
		labels: map[string]string{"app": "db"}, ports: map[string]uint32{"http-a": 8000, "http-b": 9000}})
	db2 := watchInbound(t, xds, sidecar{cluster: "cluster2", network: "net2", namespace: "sample", pod: "db-0", ip: "10.2.0.7",
		labels: map[string]string{"app": "db"}, ports: map[string]uint32{"http-a": 8000, "http-b": 9000}})

	// The three scopes at once; cluster2 has no CRD: PERMISSIVE.
	hw.await(t, "mesh STRICT", "5000=tls")
	web.await(t, "namespace PERMISSIVE", "8080=tls,raw_buffer")
	db.await(t, "workload DISABLE, port 9000 STRICT", "8000=raw_buffer 9000=tls")
	db2.await(t, "cluster2 without the CRD", "8000=tls,raw_buffer 9000=tls,raw_buffer")
	if st := rs.cluster(t, "cluster1"); st.PeerAuthentication != string(kube.PeerAuthWatching) || st.Objects.PeerAuthentications != 3 {
		t.Errorf("cluster1: peerAuthentication %q with %d objects, want watching with 3", st.PeerAuthentication, st.Objects.PeerAuthentications)
	}
	if st := rs.cluster(t, "cluster2"); st.PeerAuthentication != string(kube.PeerAuthAbsent) || !strings.Contains(st.PeerAuthenticationWhy, "not served") {
		t.Errorf("cluster2: peerAuthentication %q (%s), want absent", st.PeerAuthentication, st.PeerAuthenticationWhy)
	}

	// Updates.
	update("istio-system", "default", nil, permissive, nil)
	hw.await(t, "mesh updated to PERMISSIVE", "5000=tls,raw_buffer")
	update("sample", "db", map[string]string{"app": "db"}, unset, map[uint32]securityv1beta1.PeerAuthentication_MutualTLS_Mode{9000: disable})
	db.await(t, "workload UNSET (mesh PERMISSIVE), port 9000 DISABLE", "8000=tls,raw_buffer 9000=raw_buffer")
	update("istio-system", "default", nil, strict, nil)
	hw.await(t, "mesh back to STRICT", "5000=tls")
	db.await(t, "workload UNSET under a STRICT mesh", "8000=tls 9000=raw_buffer")

	// Deletes.
	if err := pas1("relaxed").Delete(ctx, "default", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	web.await(t, "namespace policy deleted", "8080=tls")
	if err := pas1("sample").Delete(ctx, "db", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	db.await(t, "workload policy deleted", "8000=tls 9000=tls")

	// cluster2 gets the CRD and a mesh-wide DISABLE: its sidecars follow
	// (the watch starts without a restart); cluster1's do not.
	installPeerAuthCRD(t, c2)
	must(istioClient(t, c2).SecurityV1().PeerAuthentications("istio-system").Create(ctx,
		peerAuth("istio-system", "default", nil, disable, nil), metav1.CreateOptions{}))(t)
	db2.await(t, "cluster2's own mesh DISABLE", "8000=raw_buffer 9000=raw_buffer")
	testkit.Eventually(t, testkit.WaitTimeout, "cluster2 watching", func() string {
		if st := rs.cluster(t, "cluster2"); st.PeerAuthentication != string(kube.PeerAuthWatching) {
			return st.PeerAuthentication + ": " + st.PeerAuthenticationWhy
		}
		return ""
	})
	// Whatever cluster1's sidecars got since is what they had.
	for w, want := range map[*inboundWatch]string{hw: "5000=tls", db: "8000=tls 9000=tls"} {
		for drained := false; !drained; {
			select {
			case got := <-w.updates:
				if got != want {
					t.Errorf("%s: virtualInbound %q after a change in cluster2, want still %q", w.name, got, want)
				}
			default:
				drained = true
			}
		}
	}
}

func cmpStrings(want, got []string) string {
	if slices.Equal(want, got) {
		return ""
	}
	return fmt.Sprintf("want %v, got %v", want, got)
}
