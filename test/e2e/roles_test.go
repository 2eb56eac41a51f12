package e2e

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/signal"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"

	"github.com/causeway-mesh/causeway/internal/testkit"
	"github.com/causeway-mesh/causeway/test/e2e/capture"
)

// Environment of a role process: the role's name and its JSON config.
const (
	envRole       = "CAUSEWAY_E2E_ROLE"
	envRoleConfig = "CAUSEWAY_E2E_ROLE_CONFIG"

	roleHelloworld = "helloworld"
	roleSleep      = "sleep"
)

// TestMain runs a role instead of the tests when the test binary was
// re-executed as one (see roleCommand).
func TestMain(m *testing.M) {
	role := os.Getenv(envRole)
	if role == "" {
		os.Exit(testkit.Main(m))
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	err := runRole(ctx, log, role, os.Getenv(envRoleConfig))
	stop()
	if err != nil {
		log.Error("role failed", "role", role, "error", err)
		os.Exit(1)
	}
	os.Exit(0)
}

func runRole(ctx context.Context, log *slog.Logger, role, config string) error {
	switch role {
	case roleHelloworld:
		var cfg helloworldConfig
		if err := json.Unmarshal([]byte(config), &cfg); err != nil {
			return fmt.Errorf("%s: %w", envRoleConfig, err)
		}
		return runHelloworld(ctx, log, cfg)
	case roleSleep:
		var cfg sleepConfig
		if err := json.Unmarshal([]byte(config), &cfg); err != nil {
			return fmt.Errorf("%s: %w", envRoleConfig, err)
		}
		return runSleep(ctx, log, cfg)
	default:
		return fmt.Errorf("%s=%q: unknown role; want %s or %s", envRole, role, roleHelloworld, roleSleep)
	}
}

// roleEnv is the environment that makes the test binary run role with cfg.
func roleEnv(role string, cfg any) ([]string, error) {
	data, err := json.Marshal(cfg)
	if err != nil {
		return nil, fmt.Errorf("config of role %s: %w", role, err)
	}
	return []string{envRole + "=" + role, envRoleConfig + "=" + string(data)}, nil
}

// helloworldConfig configures the helloworld role: Istio's sample server
// behind a captured sidecar's inbound, which takes its virtual inbound
// listener from the control plane (ADS at XDS as Node) and terminates
// mTLS as that listener's chain for the connection says.
type helloworldConfig struct {
	Version  string           `json:"version"`
	Instance string           `json:"instance"`
	Listen   string           `json:"listen"`
	Identity workloadIdentity `json:"identity"`
	XDS      xdsServer        `json:"xds"`
	Node     sidecarNode      `json:"node"`
}

// helloLine is the answer of GET /hello: the sample's version and instance,
// and the SPIFFE id of the client as the server's TLS saw it (noPeer for
// a plaintext client).
var helloLine = regexp.MustCompile(`^Hello version: (\S+), instance: (\S+), peer: (\S+)$`)

// noPeer is the peer helloworld reports for a plaintext client.
const noPeer = "none"

func runHelloworld(ctx context.Context, log *slog.Logger, cfg helloworldConfig) error {
	certCtx, cancel := context.WithTimeout(ctx, 20*time.Second)
	wc, err := cfg.Identity.fetch(certCtx)
	cancel()
	if err != nil {
		return err
	}
	log.Info("workload certificate", "id", wc.id, "issuer", wc.cert.Leaf.Issuer.String(), "notAfter", wc.cert.Leaf.NotAfter)
	in := &captureInbound{cert: wc, log: log}
	// The first virtual inbound listener, then the rest in the
	// background: a PeerAuthentication change arrives as a new one.
	ldsCtx, cancel := context.WithTimeout(ctx, 20*time.Second)
	err = watchADS(ldsCtx, cfg.XDS, cfg.Node.proto(), true, func(c capture.Config) (subscriptions, bool, error) {
		ok, err := in.update(c.Listeners)
		return subscriptions{}, ok, err
	})
	cancel()
	if err != nil {
		return fmt.Errorf("the virtual inbound listener from %s: %w", cfg.XDS, err)
	}
	go func() {
		for ctx.Err() == nil {
			err := watchADS(ctx, cfg.XDS, cfg.Node.proto(), true, func(c capture.Config) (subscriptions, bool, error) {
				_, err := in.update(c.Listeners)
				return subscriptions{}, false, err
			})
			if ctx.Err() == nil {
				log.Info("LDS watch ended; reconnecting", "error", err)
			}
			select {
			case <-ctx.Done():
			case <-time.After(200 * time.Millisecond):
			}
		}
	}()
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	srv := helloServer(log, cfg.Version, cfg.Instance)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(&inboundListener{Listener: ln, in: in}) }()
	log.Info("serving", "addr", cfg.Listen, "version", cfg.Version)
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	shutCtx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	return srv.Shutdown(shutCtx)
}

// helloServer is helloworld's HTTP server, for the connections of an
// inboundListener: GET /hello answers with version, instance and the
// client's SPIFFE id (noPeer for plaintext), once the connection's chain
// is found to route the request to the workload's inbound cluster.
func helloServer(log *slog.Logger, version, instance string) *http.Server {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /hello", func(w http.ResponseWriter, r *http.Request) {
		ic, ok := r.Context().Value(inboundConnKey{}).(*inboundConn)
		if !ok {
			http.Error(w, "not a captured inbound connection", http.StatusInternalServerError)
			return
		}
		if err := ic.deliver(r.Host, r.URL.Path); err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		peer, alpn, sni := noPeer, "", ""
		if ic.TLS != nil {
			cs := ic.TLS.ConnectionState()
			peer, alpn, sni = peerID(cs.PeerCertificates), cs.NegotiatedProtocol, cs.ServerName
		}
		log.Info("hello", "from", r.RemoteAddr, "peer", peer, "alpn", alpn, "sni", sni, "chain", ic.Chain)
		fmt.Fprintf(w, "Hello version: %s, instance: %s, peer: %s\n", version, instance, peer)
	})
	return &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 5 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelInfo),
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			if ic, ok := c.(*inboundConn); ok {
				return context.WithValue(ctx, inboundConnKey{}, ic)
			}
			return ctx
		},
	}
}

// inboundConnKey is the context key of the request's *inboundConn.
type inboundConnKey struct{}

// sleepConfig configures the sleep role: an application behind a
// captured sidecar that takes its configuration from the control plane.
type sleepConfig struct {
	XDS      xdsServer        `json:"xds"`
	Node     sidecarNode      `json:"node"`
	Identity workloadIdentity `json:"identity"`
	// Destination is where the application connects: the service's
	// cluster IP and port, as its DNS answers helloworld.sample. iptables
	// redirects the connection to the sidecar, which serves it by this
	// original destination.
	Destination string `json:"destination"`
	// Host and Path make the request (Host: is what curl sends).
	Host string `json:"host"`
	Path string `json:"path"`
	// MinEndpoints is how many endpoints the resolved cluster must list
	// before the calls start (the control plane may still be converging).
	MinEndpoints int `json:"minEndpoints"`
	Requests     int `json:"requests"`
	// Timeout bounds each request, dial to answer.
	Timeout time.Duration `json:"timeout"`
}

// sleepSummary is what the sleep role prints on stdout.
type sleepSummary struct {
	// Path is how the sidecar's configuration took the request, from the
	// listener to the endpoints; Upstream its cluster and endpoints.
	Path     *capture.Path  `json:"path"`
	Upstream *upstream      `json:"upstream"`
	Self     string         `json:"self"`
	Results  []callResult   `json:"results"`
	Versions map[string]int `json:"versions"`
	Peers    map[string]int `json:"peers"`
	// Errors counts failed calls by endpoint address.
	Errors map[string]int `json:"errors"`
}

// callResult is one request: the endpoint picked and what answered.
type callResult struct {
	Endpoint string `json:"endpoint"`
	Version  string `json:"version,omitempty"`
	Instance string `json:"instance,omitempty"`
	// Peer is the SPIFFE id the server saw for this client.
	Peer string `json:"peer,omitempty"`
	// Server is the SPIFFE id the client verified for the server.
	Server string `json:"server,omitempty"`
	Error  string `json:"error,omitempty"`
}

// resolveHTTP watches the sidecar's LDS, RDS, CDS and EDS until a request
// for host and path to dst resolves, as Envoy would serve it after
// iptables capture, to at least minEndpoints endpoints.
func resolveHTTP(ctx context.Context, server xdsServer, node *corev3.Node, dst netip.AddrPort, host, path string, minEndpoints int) (*capture.Path, error) {
	var (
		last    *capture.Path
		lastErr error
	)
	err := watchADS(ctx, server, node, true, func(cfg capture.Config) (subscriptions, bool, error) {
		p, err := cfg.ResolveHTTP(dst, host, path)
		last, lastErr = p, err
		var sub subscriptions
		if p.RouteConfig != "" {
			sub.RDS = []string{p.RouteConfig}
		}
		if p.EDS != "" {
			sub.EDS = []string{p.EDS}
		}
		return sub, err == nil && len(p.Endpoints) >= minEndpoints, nil
	})
	if err != nil {
		if lastErr != nil {
			return nil, fmt.Errorf("%w (last resolution of %s Host %s stopped at %+v: %w)", err, dst, host, last, lastErr)
		}
		return nil, fmt.Errorf("%w (last resolution of %s Host %s: %+v)", err, dst, host, last)
	}
	return last, nil
}

func runSleep(ctx context.Context, log *slog.Logger, cfg sleepConfig) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	dst, err := netip.ParseAddrPort(cfg.Destination)
	if err != nil {
		return fmt.Errorf("destination %q: %w", cfg.Destination, err)
	}
	wc, err := cfg.Identity.fetch(ctx)
	if err != nil {
		return err
	}
	log.Info("workload certificate", "id", wc.id, "issuer", wc.cert.Leaf.Issuer.String())
	log.Info("ADS", "server", cfg.XDS.String(), "network", cfg.Node.Network, "cluster", cfg.Node.ClusterID)
	p, err := resolveHTTP(ctx, cfg.XDS, cfg.Node.proto(), dst, cfg.Host, cfg.Path, cfg.MinEndpoints)
	if err != nil {
		return err
	}
	up := &upstream{Cluster: p.Cluster, Endpoints: p.Endpoints}
	log.Info("resolved", "listener", p.Listener, "chain", p.Chain, "routeConfig", p.RouteConfig, "virtualHost", p.VirtualHost, "cluster", p.Cluster, "endpoints", canonical(up))
	sum := sleepSummary{Path: p, Upstream: up, Self: wc.id, Versions: map[string]int{}, Peers: map[string]int{}, Errors: map[string]int{}}
	pk := newPicker(up.Endpoints)
	for range cfg.Requests {
		ep := pk.next()
		res := call(ctx, wc, ep, cfg)
		if res.Error != "" {
			sum.Errors[ep.Address]++
			log.Info("call failed", "endpoint", ep.Address, "error", res.Error)
		} else {
			sum.Versions[res.Version]++
			sum.Peers[res.Peer]++
		}
		sum.Results = append(sum.Results, res)
	}
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(sum)
}

// call makes one request to ep on a new connection, mTLS when the
// endpoint's transport socket says so.
func call(ctx context.Context, wc *workloadCert, ep endpoint, cfg sleepConfig) callResult {
	res := callResult{Endpoint: ep.Address}
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	conn, err := (&net.Dialer{}).DialContext(ctx, "tcp", ep.Address)
	if err != nil {
		res.Error = err.Error()
		return res
	}
	defer func() { _ = conn.Close() }()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	if ep.TLS != nil {
		tc := tls.Client(conn, wc.clientTLS(ep.TLS))
		if err := tc.HandshakeContext(ctx); err != nil {
			res.Error = "TLS: " + err.Error()
			return res
		}
		res.Server = peerID(tc.ConnectionState().PeerCertificates)
		conn = tc
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+cfg.Host+cfg.Path, nil)
	if err != nil {
		res.Error = err.Error()
		return res
	}
	req.Close = true
	if err := req.Write(conn); err != nil {
		res.Error = "write: " + err.Error()
		return res
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), req)
	if err != nil {
		res.Error = "read: " + err.Error()
		return res
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if err != nil {
		res.Error = "read body: " + err.Error()
		return res
	}
	if resp.StatusCode != http.StatusOK {
		res.Error = fmt.Sprintf("status %d: %s", resp.StatusCode, body)
		return res
	}
	m := helloLine.FindStringSubmatch(strings.TrimSpace(string(body)))
	if m == nil {
		res.Error = fmt.Sprintf("unexpected answer %q", body)
		return res
	}
	res.Version, res.Instance, res.Peer = m[1], m[2], m[3]
	return res
}

// errNoSummary says the sleep role printed nothing usable.
var errNoSummary = errors.New("the sleep role printed no summary")
