package server

import (
	"fmt"
	"sort"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/causeway-mesh/causeway/internal/testkit"
)

// edsWatch is a sidecar's state-of-the-world ADS stream to the server,
// subscribed to one EDS resource; every response is ACKed and its
// endpoints ("ADDRESS:PORT/WEIGHT", sorted) are sent on updates.
type edsWatch struct {
	updates chan []string
}

func watchEDS(t *testing.T, addr, network, cluster, resource string) *edsWatch {
	t.Helper()
	return watchEDSObserved(t, addr, network, cluster, resource, nil)
}

// watchEDSObserved is watchEDS that also hands every response's endpoints
// to observe (if not nil), in order, before they are sent on updates.
func watchEDSObserved(t *testing.T, addr, network, cluster, resource string, observe func([]string)) *edsWatch {
	t.Helper()
	node := &corev3.Node{
		Id: "sidecar~10.9.9.9~client-0.sample~sample.svc.cluster.local",
		Metadata: &structpb.Struct{Fields: map[string]*structpb.Value{
			"NETWORK":    structpb.NewStringValue(network),
			"CLUSTER_ID": structpb.NewStringValue(cluster),
		}},
	}
	stream := testkit.DialADS(t.Context(), t, addr, node)
	if err := stream.Request(resourcev3.EndpointType, resource); err != nil {
		t.Fatal(err)
	}
	w := &edsWatch{updates: make(chan []string, 64)}
	go func() {
		for {
			resp, err := stream.Recv()
			if err != nil {
				return
			}
			for _, res := range resp.GetResources() {
				cla := &endpointv3.ClusterLoadAssignment{}
				if res.UnmarshalTo(cla) != nil || cla.GetClusterName() != resource {
					continue
				}
				var eps []string
				for _, loc := range cla.GetEndpoints() {
					for _, ep := range loc.GetLbEndpoints() {
						sa := ep.GetEndpoint().GetAddress().GetSocketAddress()
						eps = append(eps, fmt.Sprintf("%s:%d/%d", sa.GetAddress(), sa.GetPortValue(), ep.GetLoadBalancingWeight().GetValue()))
					}
				}
				sort.Strings(eps)
				if observe != nil {
					observe(eps)
				}
				select {
				case w.updates <- eps:
				default:
				}
			}
			if stream.ACK(resp, resource) != nil {
				return
			}
		}
	}()
	return w
}

// await waits for an update equal to want.
func (w *edsWatch) await(t *testing.T, what string, want []string) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	var last []string
	for {
		select {
		case got := <-w.updates:
			last = got
			if fmt.Sprint(got) == fmt.Sprint(want) {
				return
			}
		case <-deadline:
			t.Fatalf("%s: the sidecar's EDS never became %v; last received %v", what, want, last)
		}
	}
}
