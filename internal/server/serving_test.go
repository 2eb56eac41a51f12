package server

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/causeway-mesh/causeway/internal/clusters"
	"github.com/causeway-mesh/causeway/internal/testkit"
)

// errInjected is the accept error of a failingListener.
var errInjected = errors.New("injected accept failure")

// failingListener is a listener whose Accept fails for good once the test
// calls fail, as a listener does whose socket broke.
type failingListener struct {
	net.Listener
	failed chan struct{}
	once   sync.Once
}

func (l *failingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	select {
	case <-l.failed:
		if c != nil {
			_ = c.Close()
		}
		return nil, errInjected
	default:
		return c, err
	}
}

func (l *failingListener) fail() {
	l.once.Do(func() {
		close(l.failed)
		_ = l.Close()
	})
}

// A listener that fails while serving stops Run with an error naming the
// listener and its address, and /ready turns false. Before, a failed xDS
// listener was logged at info level while /ready stayed true.
func TestRunStopsWhenAListenerFails(t *testing.T) {
	for _, tt := range []struct{ flag, name string }{
		{"--xds-addr", "xDS server (--xds-addr)"},
		{"--debug-addr", "debug server (--debug-addr)"},
		{"--xds-tls-addr", "secure port (xDS over mTLS, CA; --xds-tls-addr)"},
		{"--webhook-addr", "injection webhook (--webhook-addr)"},
	} {
		t.Run(tt.flag, func(t *testing.T) {
			srv, err := New(Config{ClusterID: "c1", Local: clusters.Clients{Kube: fake.NewClientset(clusterObjects("n1", "10.0.0.1", "")...)},
				DebugAddr: "127.0.0.1:0", XDSAddr: "127.0.0.1:0", XDSTLSAddr: "127.0.0.1:0", WebhookAddr: "127.0.0.1:0", Logger: testkit.DiscardLogger()})
			if err != nil {
				t.Fatal(err)
			}
			var fl *failingListener
			srv.listenFn = func(name, addr string) (net.Listener, error) {
				ln, err := net.Listen("tcp", addr)
				if err == nil && name == tt.flag {
					fl = &failingListener{Listener: ln, failed: make(chan struct{})}
					return fl, nil
				}
				return ln, err
			}
			errc := make(chan error, 1)
			go func() { errc <- srv.Run(t.Context()) }()
			// The CA makes its self-signed root first, which can take a
			// while on a loaded machine.
			testkit.Eventually(t, time.Minute, "not ready after a minute", func() string {
				if ready, reason := srv.Ready(); !ready {
					return reason
				}
				return ""
			})
			addr := fl.Addr().String()
			fl.fail()
			select {
			case err = <-errc:
			case <-time.After(30 * time.Second):
				t.Fatalf("Run still serving 30s after its %s listener failed", tt.flag)
			}
			if err == nil || !errors.Is(err, errInjected) || !strings.Contains(err.Error(), tt.name+" on "+addr) {
				t.Errorf("Run() = %v, want an error naming %q on %s and wrapping the accept error", err, tt.name, addr)
			}
			if ready, reason := srv.Ready(); ready || !strings.Contains(reason, tt.name) {
				t.Errorf("Ready() = %v, %q after the failure; want false, naming the listener", ready, reason)
			}
		})
	}
}

// On cancel (SIGTERM), Run drains: /ready turns false, the xDS port takes
// no new stream, the open streams (SotW and delta) end with Unavailable,
// and Run returns nil within the window and its margin.
func TestRunDrainsOnCancel(t *testing.T) {
	const window = 3 * time.Second
	ts := startServerWith(t, Config{XDSAddr: "127.0.0.1:0", DrainDuration: window}, clusterObjects("n1", "10.0.0.1", ""))
	ts.waitReady(t)
	addr := ts.srv.XDSAddr().String()
	const n = 4
	ended := make(chan error, n)
	for i := range n {
		openStream(t, addr, i%2 == 1, ended)
	}
	ts.cancel()
	begin := time.Now()
	var first error
	select {
	case first = <-ended:
	case <-time.After(window + drainMargin + 10*time.Second):
		t.Fatal("no stream ended after the cancel")
	}
	if status.Code(first) != codes.Unavailable || !strings.Contains(first.Error(), "draining") {
		t.Errorf("first stream ended with %v, want Unavailable saying the control plane drains", first)
	}
	// The drain is under way (one stream of four ended): not ready, and
	// no new connection.
	if ready, reason := ts.srv.Ready(); ready || !strings.Contains(reason, "draining") {
		t.Errorf("Ready() = %v, %q during the drain", ready, reason)
	}
	refused := make(chan error, 1)
	openStreamErr(t, addr, refused)
	if err := <-refused; status.Code(err) != codes.Unavailable {
		t.Errorf("a stream opened during the drain: %v, want Unavailable", err)
	}
	for range n - 1 {
		select {
		case err := <-ended:
			if status.Code(err) != codes.Unavailable {
				t.Errorf("stream ended with %v, want Unavailable", err)
			}
		case <-time.After(window + drainMargin + 10*time.Second):
			t.Fatal("a stream still open after the drain window and its margin")
		}
	}
	select {
	case err := <-ts.errc:
		if err != nil {
			t.Errorf("Run() = %v after a drain, want nil", err)
		}
	case <-time.After(window + drainMargin + 10*time.Second):
		t.Fatalf("Run still running %v after the drain began (window %v, margin %v)", time.Since(begin), window, drainMargin)
	}
}

// drainingServer is a server whose Run the test ends itself.
type drainingServer struct {
	srv    *Server
	cancel context.CancelFunc
	errc   chan error
}

// startServerWith runs a server of cfg over a fake config cluster c1
// holding local; the test cancels it (the cleanup does too).
func startServerWith(t *testing.T, cfg Config, local []runtime.Object) *drainingServer {
	t.Helper()
	cfg.ClusterID = "c1"
	cfg.Local = clusters.Clients{Kube: fake.NewClientset(local...)}
	cfg.Logger = testkit.DiscardLogger()
	srv, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	rs := &drainingServer{srv: srv, cancel: cancel, errc: make(chan error, 1)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		rs.errc <- srv.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return rs
}

func (rs *drainingServer) waitReady(t *testing.T) {
	t.Helper()
	testkit.Eventually(t, testkit.WaitTimeout, "ready", func() string {
		if ready, reason := rs.srv.Ready(); !ready {
			return "not ready: " + reason
		}
		return ""
	})
}

// openStream opens an ADS stream (delta or SotW) to addr, waits for its
// first CDS answer, and sends the error it ends with on ended.
func openStream(t *testing.T, addr string, delta bool, ended chan<- error) {
	t.Helper()
	nd := &corev3.Node{Id: "sidecar~10.9.9.9~client-0.sample~sample.svc.cluster.local"}
	var recv func() error
	if delta {
		ads := testkit.DialDeltaADS(context.Background(), t, addr, nd)
		if err := ads.Subscribe(resourcev3.ClusterType); err != nil {
			t.Fatal(err)
		}
		recv = func() error { _, err := ads.Recv(); return err }
	} else {
		ads := testkit.DialADS(context.Background(), t, addr, nd)
		if err := ads.Request(resourcev3.ClusterType); err != nil {
			t.Fatal(err)
		}
		recv = func() error { _, err := ads.Recv(); return err }
	}
	if err := recv(); err != nil {
		t.Fatalf("first answer: %v", err)
	}
	go func() {
		for {
			if err := recv(); err != nil {
				ended <- err
				return
			}
		}
	}()
}

// openStreamErr opens a delta stream to addr on a new connection and
// sends the error of its first receive.
func openStreamErr(t *testing.T, addr string, errc chan<- error) {
	t.Helper()
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cc.Close() })
	st, err := discoveryv3.NewAggregatedDiscoveryServiceClient(cc).DeltaAggregatedResources(t.Context())
	if err == nil {
		_, err = st.Recv()
	}
	errc <- err
}
