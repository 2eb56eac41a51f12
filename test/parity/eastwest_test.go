package parity

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/dynamic"
	"sigs.k8s.io/yaml"

	xp "github.com/causeway-mesh/causeway/internal/parity"
	"github.com/causeway-mesh/causeway/internal/testenv"
	"github.com/causeway-mesh/causeway/internal/testreq"
)

// exposeIstiod is samples/multicluster/expose-istiod.yaml: the east-west
// gateway passes 15012 (xDS and CA) and 15017 (the injection webhook) to
// istiod, TLS untouched, for a remote cluster's proxies.
const exposeIstiod = `
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: istiod-gateway, namespace: istio-system}
spec:
  selector: {istio: eastwestgateway}
  servers:
  - port: {name: tls-istiod, number: 15012, protocol: tls}
    tls: {mode: PASSTHROUGH}
    hosts: ["*"]
  - port: {name: tls-istiodwebhook, number: 15017, protocol: tls}
    tls: {mode: PASSTHROUGH}
    hosts: ["*"]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: istiod-vs, namespace: istio-system}
spec:
  hosts: ["*"]
  gateways: [istiod-gateway]
  tls:
  - match:
    - port: 15012
      sniHosts: ["*"]
    route:
    - destination:
        host: istiod.istio-system.svc.cluster.local
        port: {number: 15012}
  - match:
    - port: 15017
      sniHosts: ["*"]
    route:
    - destination:
        host: istiod.istio-system.svc.cluster.local
        port: {number: 443}
`

// istiodIP is the address of the control plane's pod in cluster1.
const istiodIP = "10.1.0.5"

// TestParityEastWestGateway is issue 16's proof for Istio's Envoy east-west
// gateway (router~, ROUTER_MODE=sni-dnat, istio=eastwestgateway): on the
// world of TestParityWithIstiod plus the control plane's Service istiod,
// each network's gateway gets from Causeway what it gets from istiod, first
// with the cross-network Gateway alone (15443 AUTO_PASSTHROUGH), then also
// with samples/multicluster/expose-istiod.yaml (15012 and 15017
// PASSTHROUGH to istiod), except the deliberate differences of
// docs/parity.md.
func TestParityEastWestGateway(t *testing.T) {
	testreq.NotShort(t, "parity test: starts two kube-apiservers, istiod and causeway serve")
	ctx, cancel := context.WithTimeout(t.Context(), 4*time.Minute)
	defer cancel()
	w := startParityWorld(ctx, t, createIstiodService)
	bins, table, env, sites := w.bins, w.table, w.env, w.sites
	causewayBin, kubeconfig, meshFlag := w.causewayBin, w.kubeconfig, w.meshFlag
	primary := sites[0].cluster

	var gateways []proxy
	for _, s := range sites {
		gw := s.gatewayNode(bins.Version)
		gateways = append(gateways, proxy{name: gw.String(), node: gw})
	}
	gw1 := gateways[0].node
	// An sni-dnat gateway that no Gateway selects (its istio label is
	// another): istiod gives it no listener, Causeway its default SNI
	// listener (docs/eastwest-envoy.md, D17).
	unselected := sites[0].gatewayNode(bins.Version)
	unselected.Pod = eastWestName + "-unselected-1"
	unselected.IP = sites[0].podIP(31)
	unselected.Labels = map[string]string{"app": eastWestName + "-unselected", "istio": "eastwestgateway-unselected", labelNetwork: sites[0].network}
	gateways = append(gateways, proxy{name: unselected.String(), node: unselected})
	ist := startIstiod(t, env, bins, primary, meshAllowAny)
	defer ist.stop()
	cw := startCauseway(t, env, causewayBin, primary.ID, kubeconfig, meshFlag, meshAllowAny)
	defer cw.stop()

	// network1's gateway passes helloworld (both clusters' services are
	// read) and the control plane's own Service.
	sniSynced := func(f xp.Facts) error {
		for _, sni := range []string{"outbound_.5000_._.helloworld.sample.svc.cluster.local", "outbound_.15012_._.istiod.istio-system.svc.cluster.local"} {
			if _, ok := f["endpoints/"+sni+"/"+sites[0].podIP(10)+":5000"]; !ok && strings.Contains(sni, "helloworld") {
				return fmt.Errorf("no endpoints of %s yet", sni)
			}
			if _, ok := f["endpoints/"+sni+"/"+istiodIP+":15012"]; !ok && strings.Contains(sni, "istiod") {
				return fmt.Errorf("no endpoints of %s yet", sni)
			}
		}
		return nil
	}
	exposed := func(f xp.Facts) error {
		for _, l := range []string{"listener/0.0.0.0_15012/address", "listener/0.0.0.0_15017/address"} {
			if _, ok := f[l]; !ok {
				return fmt.Errorf("no %s yet", l)
			}
		}
		return nil
	}

	var all []xp.Difference
	for _, phase := range []struct {
		name   string
		before func() error
		synced func(xp.Facts) error
	}{
		{name: "EASTWEST", synced: sniSynced},
		{name: "EXPOSE_ISTIOD", synced: exposed, before: func() error {
			for _, s := range sites {
				if err := applyYAML(ctx, s.cluster, exposeIstiod); err != nil {
					return err
				}
			}
			return nil
		}},
	} {
		if phase.before != nil {
			if err := phase.before(); err != nil {
				t.Fatal(err)
			}
		}
		for _, srv := range []server{ist, cw} {
			if err := waitSynced(t.Context(), srv, gw1, phase.synced); err != nil {
				t.Logf("phase %s: %s never showed it to %s (%v); comparing what it serves", phase.name, srv.name, gw1, err)
			}
		}
		diffs := compareAll(t, phase.name, ist, cw, gateways)
		for i := range diffs {
			diffs[i].Node = phase.name + " " + diffs[i].Node
		}
		all = append(all, diffs...)
	}

	unexplained, gaps, used := table.Explain(all)
	report := buildReport(all, unexplained, gaps, used, table)
	t.Log("\n" + report)
	if path := os.Getenv(reportEnv); path != "" {
		if err := os.WriteFile(path, []byte(report), 0o644); err != nil {
			t.Errorf("write the report to %s: %v", path, err)
		}
	}
	if len(unexplained) > 0 {
		t.Errorf("%d difference(s) between istiod and causeway for the east-west gateway are not in the table of deliberate differences (%s), listed under NOT EXPLAINED in the report above; fix them, or add a row with its reason",
			len(unexplained), tablePath)
	}
	if len(gaps) > 0 {
		t.Logf("%d difference(s) are known gaps (%s), listed under KNOWN GAPS in the report above", len(gaps), tablePath)
	}
}

// createIstiodService writes the control plane's Service as Istio's chart
// does (istiod in istio-system: grpc-xds 15010, https-dns 15012,
// https-webhook 443 to 15017, http-monitoring 15014) and its pod's
// endpoint. The pod runs no sidecar: its endpoint has no tlsMode label.
func createIstiodService(ctx context.Context, c *testenv.Cluster) error {
	cs := c.Client()
	ports := []corev1.ServicePort{
		{Name: "grpc-xds", Port: 15010, TargetPort: intstr.FromInt32(15010)},
		{Name: "https-dns", Port: 15012, TargetPort: intstr.FromInt32(15012)},
		{Name: "https-webhook", Port: 443, TargetPort: intstr.FromInt32(15017)},
		{Name: "http-monitoring", Port: 15014, TargetPort: intstr.FromInt32(15014)},
	}
	sel := map[string]string{"app": "istiod", "istio": "pilot"}
	if _, err := testenv.CreateService(ctx, cs, testenv.Service{
		Namespace: systemNamespace, Name: "istiod", Labels: sel, Selector: sel, Ports: ports,
	}); err != nil {
		return err
	}
	node := c.ID + "-worker"
	if _, err := testenv.CreatePod(ctx, cs, testenv.Pod{
		Namespace: systemNamespace, Name: "istiod-1", Labels: sel, Node: node, ServiceAccount: "istiod", IP: istiodIP,
		Ports: []corev1.ContainerPort{{Name: "grpc-xds", ContainerPort: 15010}, {Name: "https-dns", ContainerPort: 15012},
			{Name: "https-webhook", ContainerPort: 15017}, {Name: "http-monitoring", ContainerPort: 15014}},
		Ready: true,
	}); err != nil {
		return err
	}
	var eps []testenv.EndpointPort
	for _, p := range ports {
		eps = append(eps, testenv.EndpointPort{Name: p.Name, Port: p.TargetPort.IntVal})
	}
	_, err := testenv.CreateEndpointSlice(ctx, cs, systemNamespace, "istiod", "istiod-1", eps,
		[]testenv.Endpoint{{IP: istiodIP, Ready: true, Node: node, Pod: "istiod-1"}})
	return err
}

// applyYAML creates the Istio objects of docs (Gateways, VirtualServices,
// PeerAuthentications) in the cluster.
func applyYAML(ctx context.Context, c *testenv.Cluster, docs string) error {
	client, err := dynamic.NewForConfig(c.RESTConfig())
	if err != nil {
		return fmt.Errorf("dynamic client of %s: %w", c.ID, err)
	}
	for _, doc := range splitYAML(docs) {
		obj := &unstructured.Unstructured{}
		if err := yaml.Unmarshal([]byte(doc), &obj.Object); err != nil {
			return fmt.Errorf("decode Istio object: %w\n%s", err, doc)
		}
		gvk := obj.GroupVersionKind()
		gvr := schema.GroupVersionResource{Group: gvk.Group, Version: gvk.Version, Resource: map[string]string{
			"Gateway": "gateways", "VirtualService": "virtualservices", "PeerAuthentication": "peerauthentications",
		}[gvk.Kind]}
		if _, err := client.Resource(gvr).Namespace(obj.GetNamespace()).Create(ctx, obj, metav1.CreateOptions{}); err != nil {
			return fmt.Errorf("cluster %s: create %s %s/%s: %w", c.ID, gvk.Kind, obj.GetNamespace(), obj.GetName(), err)
		}
	}
	return nil
}
