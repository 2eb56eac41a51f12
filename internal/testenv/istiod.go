package testenv

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

const (
	// istiodStartTimeout bounds istiod's start up to its /ready: informer
	// syncs of every cluster it reads, on a busy machine.
	istiodStartTimeout = 2 * time.Minute
	// istiodMemoryLimit is the Go soft memory limit istiod runs with: ample
	// for the few objects of a test's clusters, and a bound on the machine.
	istiodMemoryLimit = "512MiB"
	// defaultIstiodMesh is the mesh config istiod gets when none is given.
	defaultIstiodMesh = "trustDomain: cluster.local\n"
)

// IstiodOptions configures [Env.StartIstiod].
type IstiodOptions struct {
	// Cluster is istiod's own (config) cluster: its kubeconfig and, unless
	// ClusterID says otherwise, its CLUSTER_ID. Its system namespace
	// istio-system must exist (istiod keeps its leases there), and Istio's
	// CRDs must be installed ([Cluster.InstallCRDs]) for istiod to read
	// Istio's configuration. Remote clusters are added as istiod adds them:
	// Secrets labeled istio/multiCluster=true in istio-system.
	Cluster *Cluster
	// ClusterID is CLUSTER_ID; empty means Cluster.ID.
	ClusterID string
	// MeshConfig is the mesh config YAML (--meshConfig); empty means only
	// the trust domain cluster.local.
	MeshConfig string
	// MeshNetworks is the meshNetworks YAML (--networksConfig); empty
	// means no networks (networks come from the topology.istio.io/network
	// labels then).
	MeshNetworks string
	// Env adds environment variables (KEY=VALUE) after the harness's own,
	// so they win.
	Env []string
}

// Istiod is a running istiod (pilot-discovery) the Env started.
type Istiod struct {
	// GRPCAddr is the plaintext xDS (ADS) address, 127.0.0.1:PORT.
	GRPCAddr string
	// HTTPAddr serves /ready and istiod's /debug endpoints.
	HTTPAddr string
	// MonitoringAddr serves /metrics.
	MonitoringAddr string
	// MeshConfigPath and NetworksPath are the files istiod watches:
	// rewriting them changes its configuration live.
	MeshConfigPath string
	NetworksPath   string
	// LogPath is the file of istiod's output.
	LogPath string

	proc *process
}

// istiodEnv is what makes pilot-discovery run out of a cluster on loopback
// with only what a parity comparison needs: no CA (no secure xDS port, no
// DNS certificate, no root ConfigMaps), no webhooks or their configuration
// patchers, no injection, no Gateway API controllers (their CRDs are not
// installed), and a bounded memory.
func istiodEnv(clusterID string) []string {
	return []string{
		"CLUSTER_ID=" + clusterID,
		"POD_NAMESPACE=istio-system",
		"POD_NAME=istiod-" + clusterID,
		"REVISION=",
		"ENABLE_CA_SERVER=false",
		"PILOT_CERT_PROVIDER=none",
		"INJECT_ENABLED=false",
		"INJECTION_WEBHOOK_CONFIG_NAME=",
		"VALIDATION_WEBHOOK_CONFIG_NAME=",
		"PILOT_ENABLE_GATEWAY_API=false",
		"PILOT_ENABLE_GATEWAY_API_STATUS=false",
		"PILOT_ENABLE_GATEWAY_API_DEPLOYMENT_CONTROLLER=false",
		"PILOT_ENABLE_GATEWAY_API_GATEWAYCLASS_CONTROLLER=false",
		"GOMEMLIMIT=" + istiodMemoryLimit,
	}
}

// StartIstiod runs istiod (pilot-discovery discovery) against opts.Cluster
// on free loopback ports and waits for its /ready, which it answers once
// every informer of its clusters has synced. It is stopped by its PID with
// the Env's other processes (SIGTERM, SIGKILL a second later) or by
// [Istiod.Stop]; its log is in the Env's folder and in [Env.Logs].
func (e *Env) StartIstiod(ctx context.Context, bins IstioBinaries, opts IstiodOptions) (*Istiod, error) {
	if opts.Cluster == nil {
		return nil, errors.New("testenv: IstiodOptions.Cluster is required: the cluster istiod runs in")
	}
	id := opts.ClusterID
	if id == "" {
		id = opts.Cluster.ID
	}
	dir := filepath.Join(e.dir, "istiod-"+id)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("testenv: istiod of %s: %w", id, err)
	}
	mesh := opts.MeshConfig
	if mesh == "" {
		mesh = defaultIstiodMesh
	}
	networks := opts.MeshNetworks
	if networks == "" {
		networks = "networks: {}\n"
	}
	ist := &Istiod{
		MeshConfigPath: filepath.Join(dir, "mesh.yaml"),
		NetworksPath:   filepath.Join(dir, "meshNetworks.yaml"),
		LogPath:        filepath.Join(dir, "istiod.log"),
	}
	kubeconfig := filepath.Join(dir, "kubeconfig")
	if err := writeFiles(map[string][]byte{
		ist.MeshConfigPath: []byte(mesh),
		ist.NetworksPath:   []byte(networks),
		kubeconfig:         opts.Cluster.kubeconfig,
	}); err != nil {
		return nil, fmt.Errorf("testenv: istiod of %s: %w", id, err)
	}
	env := append(istiodEnv(id), opts.Env...)

	ctx, cancel := context.WithTimeout(ctx, istiodStartTimeout)
	defer cancel()
	httpClient := &http.Client{Timeout: 2 * time.Second}
	var err error
	for range portAttempts {
		var ports []int
		if ports, err = e.runner.pickPorts(3); err != nil {
			return nil, err
		}
		ist.GRPCAddr = "127.0.0.1:" + strconv.Itoa(ports[0])
		ist.HTTPAddr = "127.0.0.1:" + strconv.Itoa(ports[1])
		ist.MonitoringAddr = "127.0.0.1:" + strconv.Itoa(ports[2])
		var p *process
		if p, err = e.runner.startEnv("istiod "+id, ist.LogPath, bins.PilotDiscovery, ist.discoveryArgs(kubeconfig, id), env); err != nil {
			return nil, fmt.Errorf("testenv: %w", err)
		}
		if err = waitIstiodReady(ctx, p, httpClient, ist.HTTPAddr); err == nil {
			ist.proc = p
			return ist, nil
		}
		p.stop()
		if !errors.Is(err, errPortTaken) {
			break
		}
	}
	return nil, fmt.Errorf("testenv: istiod of %s: %w", id, err)
}

// discoveryArgs are the arguments of pilot-discovery for cluster id,
// reached with kubeconfig, on the addresses and files of i.
func (i *Istiod) discoveryArgs(kubeconfig, id string) []string {
	return []string{
		"discovery",
		"--kubeconfig=" + kubeconfig,
		"--clusterID=" + id,
		"--meshConfig=" + i.MeshConfigPath,
		"--networksConfig=" + i.NetworksPath,
		"--grpcAddr=" + i.GRPCAddr,
		"--httpAddr=" + i.HTTPAddr,
		"--monitoringAddr=" + i.MonitoringAddr,
		// No TLS ports: the secure xDS port and the webhook server.
		"--secureGRPCAddr=",
		"--httpsAddr=",
		// ControlZ on a port the kernel picks (its errors are ignored).
		"--ctrlz_port=0",
		"--shutdownDuration=1s",
		"--domain=cluster.local",
	}
}

// waitIstiodReady waits until istiod p answers /ready on httpAddr.
func waitIstiodReady(ctx context.Context, p *process, httpClient *http.Client, httpAddr string) error {
	return waitFor(ctx, p, "ready", func(ctx context.Context) (bool, error) {
		body, code, err := get(ctx, httpClient, "http://"+httpAddr+"/ready")
		if err != nil {
			return false, err
		}
		if code != http.StatusOK {
			return false, fmt.Errorf("/ready: %d %s", code, strings.TrimSpace(body))
		}
		return true, nil
	})
}

// Stop stops istiod (SIGTERM, SIGKILL a second later) and waits for it.
func (i *Istiod) Stop() {
	i.proc.stop()
}

// Tail returns the last lines of istiod's log.
func (i *Istiod) Tail() string {
	return i.proc.tail()
}

// startEnv is start with environment variables added.
func (r *runner) startEnv(name, logPath, bin string, args, env []string) (*process, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil, fmt.Errorf("start %s: %w", name, errClosed)
	}
	p, err := startProcessEnv(r.launcher, name, logPath, bin, args, env)
	if err != nil {
		return nil, err
	}
	r.processes = append(r.processes, p)
	return p, nil
}
