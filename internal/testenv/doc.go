// Package testenv starts real Kubernetes control planes on loopback for
// integration tests ([Start]) and for programs such as the load harness
// ([Launch], [Env.Close]): one etcd per [Env] and, per cluster, a kube-apiserver
// (its own etcd prefix, serving certificate, CA, admin token, service-account
// signing key and Service CIDR) and, on request, a kube-controller-manager
// that runs only the EndpointSlice controllers. There is no kubelet: the
// helpers in objects.go write Namespaces, Nodes, Pods, Services and
// EndpointSlices with the status a kubelet or a controller would set.
//
// The binaries come from tools/kube/build.sh (kube-apiserver,
// kube-controller-manager, built from the pinned Kubernetes modules into a
// cache keyed by version, or $CAUSEWAY_KUBE_BIN) and from tools/etcd/build.sh
// (etcd 3.6, or $CAUSEWAY_ETCD_BIN; an etcd on PATH or Debian's etcd-server
// 3.4 only when that is not built). When one is missing a test is skipped, or fails when
// CI=true or CAUSEWAY_REQUIRE_INTEGRATION=1 (see [testreq.SkipOrFail], which applies
// internal/testreq's policy).
//
// Beside the clusters an Env runs istiod, the parity test's oracle
// ([Env.StartIstiod], with Istio's CRDs from [Cluster.InstallCRDs]; both from
// tools/istio/build.sh or $CAUSEWAY_ISTIO_BIN, see [FindIstio]), and any
// other process a test supervises ([Env.Run]).
//
// Every process is started with free loopback ports, logs to a file in the
// Env's folder (the test's temporary directory under [Start], whose cleanup
// prints every log's tail when the test fails; see [Env.Logs]) and is
// stopped by its PID in t.Cleanup or [Env.Close], so packages can run in
// parallel.
package testenv
