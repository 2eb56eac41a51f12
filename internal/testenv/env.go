package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/rest"

	"github.com/causeway-mesh/causeway/internal/testkit"
)

const (
	// startTimeout bounds the start of a whole Env; a cold start on a busy
	// two-core machine takes well under it.
	startTimeout = 2 * time.Minute
	// maxClusters keeps the per-cluster Service CIDRs 10.96/16 .. 10.127/16.
	maxClusters = 32
	// adminUser is the user of the admin token, in group system:masters.
	adminUser = "causeway-admin"

	// disabledAdmission turns off every admission plugin the apiserver
	// enables by default except NamespaceLifecycle (objects need their
	// namespace, as in a real cluster). Notably ServiceAccount is off: no
	// controller creates the "default" ServiceAccount here, so Pods may name
	// any service account.
	disabledAdmission = "LimitRanger,ServiceAccount,TaintNodesByCondition,PodSecurity,Priority," +
		"DefaultTolerationSeconds,DefaultStorageClass,StorageObjectInUseProtection,PodGroupProtection," +
		"PersistentVolumeClaimResize,RuntimeClass,CertificateApproval,CertificateSigning," +
		"ClusterTrustBundleAttest,CertificateSubjectRestriction,DefaultIngressClass,PodTopologyLabels," +
		"NodeDeclaredFeatureValidator,PodResizeValidator,MutatingAdmissionPolicy,MutatingAdmissionWebhook," +
		"ValidatingAdmissionPolicy,ValidatingAdmissionWebhook,ResourceQuota"
)

// Options configures [Launch] and [Start].
type Options struct {
	// Clusters is how many clusters to start when ClusterIDs is empty; 0
	// means 1. They are named cluster1, cluster2, ...
	Clusters int
	// ClusterIDs names the clusters to start (DNS labels, distinct).
	ClusterIDs []string
	// ControllerManager starts, per cluster, a kube-controller-manager that
	// runs only the EndpointSlice and EndpointSlice-mirroring controllers,
	// so that Services with a selector get real EndpointSlices from the
	// Pods a test writes.
	ControllerManager bool
	// Dir holds the processes' files (certificates, etcd's data) and logs.
	// Empty: a new temporary folder, which [Env.Close] removes ([Start]
	// uses the test's temporary folder).
	Dir string
	// EtcdInMemory keeps etcd's data in a folder of /dev/shm (removed at
	// the end), so that a write's latency is the API server's and etcd's
	// work, not the disk's fsync: for measurements (the load harness).
	// Ignored where /dev/shm is missing.
	EtcdInMemory bool
	// MutatingWebhooks turns on the MutatingAdmissionWebhook admission
	// plugin, so that MutatingWebhookConfigurations a test registers are
	// called (the sidecar injection test).
	MutatingWebhooks bool
}

func (o Options) clusterIDs() ([]string, error) {
	ids := o.ClusterIDs
	if len(ids) == 0 {
		n := max(o.Clusters, 1)
		for i := range n {
			ids = append(ids, "cluster"+strconv.Itoa(i+1))
		}
	} else if o.Clusters != 0 && o.Clusters != len(ids) {
		return nil, fmt.Errorf("Options.Clusters is %d but Options.ClusterIDs names %d clusters; set only one of them", o.Clusters, len(ids))
	}
	if len(ids) > maxClusters {
		return nil, fmt.Errorf("%d clusters asked, at most %d are supported", len(ids), maxClusters)
	}
	seen := make(map[string]bool, len(ids))
	for _, id := range ids {
		if errs := validation.IsDNS1123Label(id); len(errs) > 0 {
			return nil, fmt.Errorf("cluster ID %q is not a DNS label: %s", id, strings.Join(errs, "; "))
		}
		if seen[id] {
			return nil, fmt.Errorf("cluster ID %q is given twice", id)
		}
		seen[id] = true
	}
	return ids, nil
}

// Env is one etcd and the clusters that keep their objects in it.
type Env struct {
	// Clusters are the started clusters, in the order of Options.
	Clusters []*Cluster
	// EtcdURL is the client URL of the Env's etcd.
	EtcdURL string
	// StartupTime is how long the start took, from starting etcd to the
	// last cluster being ready.
	StartupTime time.Duration
	// EtcdStartupTime is how long etcd took to be healthy.
	EtcdStartupTime time.Duration

	runner    *runner
	dir       string
	removeDir bool
	closeOnce sync.Once
}

// Cluster returns the cluster named id, or nil.
func (e *Env) Cluster(id string) *Cluster {
	for _, c := range e.Clusters {
		if c.ID == id {
			return c
		}
	}
	return nil
}

// Dir is the folder of the Env's files and process logs.
func (e *Env) Dir() string {
	return e.dir
}

// Logs returns the last lines of the log of every process the Env started
// (etcd, each apiserver and controller-manager), for a failure report.
func (e *Env) Logs() string {
	return e.runner.logs()
}

// Close stops every process (etcd last) and, if [Launch] made the Env's
// folder, removes it. It is safe to call more than once; a Cluster cannot
// be restarted after it.
func (e *Env) Close() {
	e.closeOnce.Do(func() {
		e.runner.shutdown()
		if e.removeDir {
			_ = os.RemoveAll(e.dir)
		}
	})
}

// StartClusters starts n clusters with default options and returns them.
func StartClusters(t testing.TB, n int) []*Cluster {
	t.Helper()
	return Start(t, Options{Clusters: n}).Clusters
}

// Start is [Launch] for a test: it starts an etcd and the clusters of opts
// in the test's temporary folder (unless opts.Dir is set) and stops
// everything in t.Cleanup. A missing binary skips or fails the test as
// [testreq.SkipOrFail] says; any other problem fails it, with the tail of the
// failing process's log. When the test fails, the cleanup logs the tail of
// every process's log.
func Start(t testing.TB, opts Options) *Env {
	t.Helper()
	return start(t, opts, testkit.FreePorts)
}

// start is Start with the port picker injected, so that a test can hand out
// a taken port and see the harness retry.
func start(t testing.TB, opts Options, pickPorts func(n int) ([]int, error)) *Env {
	t.Helper()
	ids, err := opts.clusterIDs()
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	bins := RequireBinaries(t, opts.ControllerManager)
	if opts.Dir == "" {
		opts.Dir = t.TempDir()
	}
	env, err := launch(t.Context(), opts, ids, bins, pickPorts)
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Log(env.Logs())
		}
		env.Close()
	})
	t.Logf("testenv: %d cluster(s) %v ready in %v (etcd healthy after %v; controller-manager: %t)",
		len(ids), ids, env.StartupTime.Round(time.Millisecond), env.EtcdStartupTime.Round(time.Millisecond), opts.ControllerManager)
	return env
}

// Launch starts an etcd and the clusters of opts in parallel and waits until
// every apiserver is ready, for programs that are not tests (the load
// harness). ctx bounds the start only (which gives up after two minutes
// anyway); the processes run until [Env.Close], or until this process
// dies (they get SIGKILL then). A missing binary is an error that says how
// to install it (see [FindBinaries]). On any error everything started is
// stopped, and the error carries the tail of the failing process's log.
func Launch(ctx context.Context, opts Options) (*Env, error) {
	ids, err := opts.clusterIDs()
	if err != nil {
		return nil, fmt.Errorf("testenv: %w", err)
	}
	bins, err := FindBinaries(opts.ControllerManager)
	if err != nil {
		return nil, err
	}
	env, err := launch(ctx, opts, ids, bins, testkit.FreePorts)
	if err != nil {
		return nil, fmt.Errorf("testenv: %w", err)
	}
	return env, nil
}

// launch starts the Env in opts.Dir, or in a new temporary folder.
func launch(ctx context.Context, opts Options, ids []string, bins Binaries, pickPorts func(n int) ([]int, error)) (*Env, error) {
	begin := time.Now()
	ctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()

	env := &Env{Clusters: make([]*Cluster, len(ids)), dir: opts.Dir}
	if env.dir == "" {
		dir, err := os.MkdirTemp("", "causeway-testenv-")
		if err != nil {
			return nil, fmt.Errorf("create a folder for the clusters: %w", err)
		}
		env.dir, env.removeDir = dir, true
	}
	env.runner = &runner{launcher: newLauncher(), dir: env.dir, bins: bins, pickPorts: pickPorts, etcdInMemory: opts.EtcdInMemory}

	etcdURL, err := env.runner.startEtcd(ctx)
	if err != nil {
		env.Close()
		return nil, err
	}
	env.EtcdURL = etcdURL
	env.EtcdStartupTime = time.Since(begin)
	errs := make([]error, len(ids))
	var wg sync.WaitGroup
	for i, id := range ids {
		wg.Go(func() {
			env.Clusters[i], errs[i] = env.runner.startCluster(ctx, i, id, etcdURL, opts.ControllerManager, opts.MutatingWebhooks)
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		env.Close()
		return nil, err
	}
	env.StartupTime = time.Since(begin)
	return env, nil
}

// runner owns the processes of one Env.
type runner struct {
	launcher  *launcher
	dir       string
	bins      Binaries
	pickPorts func(n int) ([]int, error)
	// etcdInMemory: etcd's data in a folder of /dev/shm, shmDir, removed
	// at shutdown.
	etcdInMemory bool
	shmDir       string

	// mu guards processes and closed, and is held while a process is
	// started so that shutdown cannot close the launcher under it.
	mu        sync.Mutex
	processes []*process
	closed    bool
}

// errClosed says a process was to be started after the Env was closed.
var errClosed = errors.New("the environment is closed")

func (r *runner) start(name, logPath, bin string, args []string) (*process, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil, fmt.Errorf("start %s: %w", name, errClosed)
	}
	p, err := startProcess(r.launcher, name, logPath, bin, args)
	if err != nil {
		return nil, err
	}
	r.processes = append(r.processes, p)
	return p, nil
}

// logs returns the tail of every process's log.
func (r *runner) logs() string {
	r.mu.Lock()
	procs := slices.Clone(r.processes)
	r.mu.Unlock()
	var b strings.Builder
	for _, p := range procs {
		fmt.Fprintf(&b, "testenv: last lines of %s (%s):\n%s\n", p.name, p.logPath, p.tail())
	}
	return b.String()
}

// shutdown stops every process, clients of etcd first, then etcd, and ends
// the launcher.
func (r *runner) shutdown() {
	r.mu.Lock()
	procs := r.processes
	r.closed = true
	r.mu.Unlock()
	var wg sync.WaitGroup
	var etcd []*process
	for _, p := range procs {
		if p.name == "etcd" {
			etcd = append(etcd, p)
			continue
		}
		wg.Go(p.stop)
	}
	wg.Wait()
	for _, p := range etcd {
		p.stop()
	}
	r.launcher.close()
	if r.shmDir != "" {
		_ = os.RemoveAll(r.shmDir)
	}
}

// startEtcd starts the Env's etcd and returns its client URL once healthy.
func (r *runner) startEtcd(ctx context.Context) (string, error) {
	dir := filepath.Join(r.dir, "etcd")
	var err error
	for range portAttempts {
		var ports []int
		if ports, err = r.pickPorts(2); err != nil {
			return "", err
		}
		clientURL := "http://127.0.0.1:" + strconv.Itoa(ports[0])
		peerURL := "http://127.0.0.1:" + strconv.Itoa(ports[1])
		var dataDir string
		if dataDir, err = r.etcdDataDir(dir); err != nil {
			return "", err
		}
		var p *process
		if p, err = r.start("etcd", filepath.Join(dir, "etcd.log"), r.bins.Etcd, etcdArgs(dataDir, clientURL, peerURL)); err != nil {
			return "", err
		}
		if err = waitEtcdHealthy(ctx, p, clientURL); err == nil {
			return clientURL, nil
		}
		p.stop()
		if !errors.Is(err, errPortTaken) {
			break
		}
	}
	return "", err
}

// etcdDataDir makes etcd's folder dir and an empty data folder: in
// /dev/shm when the etcd is in memory and the machine has it, else in dir.
func (r *runner) etcdDataDir(dir string) (string, error) {
	dataDir := filepath.Join(dir, "data")
	if r.etcdInMemory {
		if r.shmDir == "" {
			if st, serr := os.Stat("/dev/shm"); serr == nil && st.IsDir() {
				var err error
				if r.shmDir, err = os.MkdirTemp("/dev/shm", "causeway-etcd-"); err != nil {
					return "", fmt.Errorf("etcd data dir in memory: %w", err)
				}
			}
		}
		if r.shmDir != "" {
			dataDir = filepath.Join(r.shmDir, "data")
		}
	}
	if err := os.RemoveAll(dataDir); err != nil {
		return "", fmt.Errorf("clear etcd data dir: %w", err)
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return "", fmt.Errorf("create etcd data dir: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("create etcd's folder: %w", err)
	}
	return dataDir, nil
}

// etcdArgs are the arguments of a one-member etcd.
func etcdArgs(dataDir, clientURL, peerURL string) []string {
	return []string{
		"--name=testenv",
		"--data-dir=" + dataDir,
		"--listen-client-urls=" + clientURL,
		"--advertise-client-urls=" + clientURL,
		"--listen-peer-urls=" + peerURL,
		"--initial-advertise-peer-urls=" + peerURL,
		"--initial-cluster=testenv=" + peerURL,
		"--initial-cluster-state=new",
		// One member: elect it at once rather than after the default
		// one-second election timeout.
		"--heartbeat-interval=10",
		"--election-timeout=100",
		"--logger=zap",
		"--log-outputs=stderr",
	}
}

// waitEtcdHealthy waits until etcd p answers healthy on clientURL.
func waitEtcdHealthy(ctx context.Context, p *process, clientURL string) error {
	httpClient := &http.Client{Timeout: 2 * time.Second}
	return waitFor(ctx, p, "healthy", func(ctx context.Context) (bool, error) {
		body, code, err := get(ctx, httpClient, clientURL+"/health")
		if err != nil {
			return false, err
		}
		if code != http.StatusOK || !strings.Contains(body, `"health":"true"`) {
			return false, fmt.Errorf("/health: %d %s", code, body)
		}
		return true, nil
	})
}

// admissionOff is the apiserver's --disable-admission-plugins: every
// plugin of disabledAdmission, but MutatingAdmissionWebhook when
// mutatingWebhooks.
func admissionOff(mutatingWebhooks bool) string {
	if !mutatingWebhooks {
		return disabledAdmission
	}
	return strings.Replace(disabledAdmission, "MutatingAdmissionWebhook,", "", 1)
}

// startCluster starts the apiserver (and controller-manager) of one cluster.
func (r *runner) startCluster(ctx context.Context, index int, id, etcdURL string, withControllerManager, mutatingWebhooks bool) (*Cluster, error) {
	dir := filepath.Join(r.dir, id)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("cluster %s: %w", id, err)
	}
	files, err := writeClusterFiles(dir, id)
	if err != nil {
		return nil, fmt.Errorf("cluster %s: %w", id, err)
	}
	serviceCIDR := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(96 + index), 0, 0}), 16)

	var c *Cluster
	for range portAttempts {
		var ports []int
		if ports, err = r.pickPorts(1); err != nil {
			return nil, err
		}
		host := "https://127.0.0.1:" + strconv.Itoa(ports[0])
		if c, err = newCluster(id, host, files.ca.CertPEM, files.token, serviceCIDR); err != nil {
			return nil, err
		}
		c.saKeyPath = files.serviceAccountKey
		args := []string{
			"--etcd-servers=" + etcdURL,
			"--etcd-prefix=" + c.EtcdPrefix,
			"--bind-address=127.0.0.1",
			"--advertise-address=127.0.0.1",
			"--secure-port=" + strconv.Itoa(ports[0]),
			"--cert-dir=" + dir,
			"--tls-cert-file=" + files.servingCert,
			"--tls-private-key-file=" + files.servingKey,
			"--token-auth-file=" + files.tokens,
			"--authorization-mode=RBAC",
			"--service-account-issuer=" + ServiceAccountIssuer,
			"--service-account-key-file=" + files.serviceAccountPub,
			"--service-account-signing-key-file=" + files.serviceAccountKey,
			"--service-cluster-ip-range=" + serviceCIDR.String(),
			"--disable-admission-plugins=" + admissionOff(mutatingWebhooks),
			"--endpoint-reconciler-type=none",
			"--profiling=false",
		}
		name := "kube-apiserver " + id
		logPath := filepath.Join(dir, "kube-apiserver.log")
		var p *process
		if p, err = r.start(name, logPath, r.bins.KubeAPIServer, args); err != nil {
			return nil, err
		}
		if err = waitReady(ctx, p, c); err == nil {
			c.runner, c.bin, c.args, c.logPath, c.proc = r, r.bins.KubeAPIServer, args, logPath, p
			break
		}
		p.stop()
		if !errors.Is(err, errPortTaken) {
			return nil, err
		}
	}
	if err != nil {
		return nil, err
	}
	if withControllerManager {
		if err := r.startControllerManager(ctx, dir, c, files.ca); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// waitReady waits for /readyz and for the "default" namespace, which the
// apiserver creates just after it starts serving.
func waitReady(ctx context.Context, p *process, c *Cluster) error {
	httpClient, err := rest.HTTPClientFor(c.config)
	if err != nil {
		return fmt.Errorf("HTTP client of cluster %s: %w", c.ID, err)
	}
	err = waitFor(ctx, p, "ready", func(ctx context.Context) (bool, error) {
		body, code, err := get(ctx, httpClient, c.Host+"/readyz")
		if err != nil {
			return false, err
		}
		if code != http.StatusOK {
			return false, fmt.Errorf("/readyz: %d %s", code, body)
		}
		return true, nil
	})
	if err != nil {
		return err
	}
	return waitFor(ctx, p, "serving the default namespace", func(ctx context.Context) (bool, error) {
		_, err := c.client.CoreV1().Namespaces().Get(ctx, metav1.NamespaceDefault, metav1.GetOptions{})
		return err == nil, err
	})
}

// startControllerManager runs kube-controller-manager with only the
// EndpointSlice controllers against c and waits for its /healthz.
func (r *runner) startControllerManager(ctx context.Context, dir string, c *Cluster, ca keyPair) error {
	kubeconfig := filepath.Join(dir, "admin.kubeconfig")
	if err := os.WriteFile(kubeconfig, c.kubeconfig, 0o600); err != nil {
		return fmt.Errorf("cluster %s: write kubeconfig: %w", c.ID, err)
	}
	serving, err := newServingCert(ca, "kube-controller-manager", loopbackIPs(), []string{"localhost"})
	if err != nil {
		return fmt.Errorf("cluster %s: %w", c.ID, err)
	}
	certFile, keyFile := filepath.Join(dir, "kcm.crt"), filepath.Join(dir, "kcm.key")
	if err := writeFiles(map[string][]byte{certFile: serving.CertPEM, keyFile: serving.KeyPEM}); err != nil {
		return fmt.Errorf("cluster %s: %w", c.ID, err)
	}
	httpClient, err := rest.HTTPClientFor(c.config)
	if err != nil {
		return fmt.Errorf("HTTP client of cluster %s: %w", c.ID, err)
	}
	for range portAttempts {
		var ports []int
		if ports, err = r.pickPorts(1); err != nil {
			return err
		}
		args := []string{
			"--kubeconfig=" + kubeconfig,
			"--authentication-kubeconfig=" + kubeconfig,
			"--authorization-kubeconfig=" + kubeconfig,
			// Token reviews are all the harness needs; without this the
			// manager polls for a client-CA ConfigMap that is never written.
			"--authentication-skip-lookup",
			"--controllers=endpointslice-controller,endpointslice-mirroring-controller",
			"--leader-elect=false",
			"--use-service-account-credentials=false",
			"--bind-address=127.0.0.1",
			"--secure-port=" + strconv.Itoa(ports[0]),
			"--tls-cert-file=" + certFile,
			"--tls-private-key-file=" + keyFile,
			"--profiling=false",
		}
		name := "kube-controller-manager " + c.ID
		var p *process
		if p, err = r.start(name, filepath.Join(dir, "kube-controller-manager.log"), r.bins.KubeControllerManager, args); err != nil {
			return err
		}
		healthz := "https://127.0.0.1:" + strconv.Itoa(ports[0]) + "/healthz"
		err = waitFor(ctx, p, "healthy", func(ctx context.Context) (bool, error) {
			body, code, err := get(ctx, httpClient, healthz)
			if err != nil {
				return false, err
			}
			if code != http.StatusOK {
				return false, fmt.Errorf("/healthz: %d %s", code, body)
			}
			return true, nil
		})
		if err == nil {
			return nil
		}
		p.stop()
		if !errors.Is(err, errPortTaken) {
			return err
		}
	}
	return err
}

// clusterFiles are the paths of what an apiserver reads, and the secrets.
type clusterFiles struct {
	ca                keyPair
	token             string
	servingCert       string
	servingKey        string
	tokens            string
	serviceAccountKey string
	serviceAccountPub string
}

func writeClusterFiles(dir, id string) (clusterFiles, error) {
	ca, err := newCA(id + "-ca")
	if err != nil {
		return clusterFiles{}, err
	}
	serving, err := newServingCert(ca, "kube-apiserver", loopbackIPs(), []string{
		"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local",
	})
	if err != nil {
		return clusterFiles{}, err
	}
	saKey, saPub, err := newServiceAccountKey()
	if err != nil {
		return clusterFiles{}, err
	}
	raw := make([]byte, 24)
	if _, err := rand.Read(raw); err != nil {
		return clusterFiles{}, fmt.Errorf("generate admin token: %w", err)
	}
	f := clusterFiles{
		ca:                ca,
		token:             hex.EncodeToString(raw),
		servingCert:       filepath.Join(dir, "apiserver.crt"),
		servingKey:        filepath.Join(dir, "apiserver.key"),
		tokens:            filepath.Join(dir, "tokens.csv"),
		serviceAccountKey: filepath.Join(dir, "service-account.key"),
		serviceAccountPub: filepath.Join(dir, "service-account.pub"),
	}
	// token,user,uid,"group,..." as --token-auth-file reads it.
	tokens := fmt.Sprintf("%s,%s,%s,\"system:masters\"\n", f.token, adminUser, adminUser)
	err = writeFiles(map[string][]byte{
		filepath.Join(dir, "ca.crt"): ca.CertPEM,
		f.servingCert:                serving.CertPEM,
		f.servingKey:                 serving.KeyPEM,
		f.tokens:                     []byte(tokens),
		f.serviceAccountKey:          saKey,
		f.serviceAccountPub:          saPub,
	})
	return f, err
}

func writeFiles(files map[string][]byte) error {
	for path, data := range files {
		if err := os.WriteFile(path, data, 0o600); err != nil {
			return fmt.Errorf("write %s: %w", path, err)
		}
	}
	return nil
}

func get(ctx context.Context, c *http.Client, url string) (body string, code int, err error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", 0, fmt.Errorf("GET %s: %w", url, err)
	}
	resp, err := c.Do(req)
	if err != nil {
		return "", 0, fmt.Errorf("GET %s: %w", url, err)
	}
	defer func() { _ = resp.Body.Close() }()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if err != nil {
		return "", 0, fmt.Errorf("GET %s: read body: %w", url, err)
	}
	return string(data), resp.StatusCode, nil
}
