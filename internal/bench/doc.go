// Package bench is Causeway's load harness: it measures how fast `causeway
// serve` brings every proxy the full, correct view of a large mesh and how
// fast it carries a change to every proxy that must see it, against real
// kube-apiservers.
//
// A run starts two clusters on two networks (testenv.Launch), each with a
// LoadBalancer east-west gateway, the second joined to the first by a
// remote Secret, and fills both with the same S Services of E endpoints
// (Services, EndpointSlices and Running, Ready Pods labeled
// security.istio.io/tlsMode=istio). It then starts the built causeway
// binary as its own process (so that its CPU time and peak RSS are read
// honestly from /proc), connects P simulated sidecars per network (real
// ADS streams over grpc-go with go-control-plane's stubs, state of the
// world or delta) that subscribe to CDS and then to EDS for every cluster
// they get, and measures:
//
//   - start: from starting the server process to every proxy holding every
//     service with its local endpoints and the other network's gateway;
//   - churn: at R changes/s (one endpoint of a random EndpointSlice moved to
//     a new address, alternately in each cluster), for every pair of a
//     change and a proxy of the network that must see it, the time from
//     just before the Update call to the EDS response that carries it;
//     pairs never delivered after a settle timeout are counted lost;
//   - a slow consumer: the same with one proxy that stops reading, whose
//     neighbors' latency must not move;
//   - correctness: every proxy's final EDS, compared with what the objects
//     listed back from the apiservers imply (an independent, small
//     re-statement of the split-horizon rule, not the model package).
//
// Delivery is decided by content, never by versions: a change's new
// address is unique, so an EDS response carries a change when the
// resource holds that address, or the address of a later change of the
// same EndpointSlice (which the server can only have seen after it).
//
// Decoded resources are interned by their bytes, so that the harness
// decodes each distinct resource once however many proxies receive it and
// steals as little CPU from the server as it can on a shared machine.
package bench
