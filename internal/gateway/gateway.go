package gateway

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/causeway-mesh/causeway/internal/envoy"
)

// maxXDSMessage bounds one xDS response: the whole CDS or EDS of a large
// mesh is far above gRPC's default of 4 MiB.
const maxXDSMessage = 256 << 20

// Gateway is a running east-west gateway: its listeners, its admin server
// and its ADS client. Build one with New, then call Run.
type Gateway struct {
	cfg Config
	log *slog.Logger
	// lns are the gateway's listeners: the main one (SNI to this
	// network's endpoints), then the control plane's when
	// Config.ExposeControlPlane is set, then the webhook's when
	// Config.ExposeWebhook is.
	lns     []*listener
	adminLn net.Listener
	metrics *metrics
	ads     *adsClient
	bufs    helloBuffers
	dialer  net.Dialer

	// open counts open connections.
	openConns atomic.Int64
	// hellos are the connections still reading their ClientHello, capped
	// by Config.MaxPendingHellos.
	hellos pendingHellos

	ready     chan struct{} // closed once the first full config is applied
	readyOnce sync.Once
	started   atomic.Bool

	// mu orders starting the accept loop against Drain, so that conns
	// is never added to from zero while Drain waits on it.
	mu       sync.Mutex
	drained  bool
	draining atomic.Bool // for /ready, read without mu
	// conns counts the accept loop and every open connection.
	conns sync.WaitGroup
	// killCtx is canceled to close every connection at once (a drain that
	// ran out of time, or Close).
	killCtx context.Context
	kill    context.CancelFunc
}

// listener is one of the gateway's listeners: its socket, and the
// routing table of the LDS listener it runs.
type listener struct {
	// name is the LDS listener whose filter chains route connections.
	name string
	ln   *net.TCPListener
	// table is what connections are routed by; nil until the first
	// accepted configuration.
	table atomic.Pointer[Table]
}

// New checks cfg, binds the listeners and the admin address, and returns a
// Gateway that accepts nothing until Run has applied the control plane's
// first full configuration (connections wait in the listen backlog until
// then). The sockets are released when Run returns, or by Close if Run is
// never called.
func New(cfg Config) (*Gateway, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	binds := []struct{ addr, name, flag string }{{cfg.Listen, cfg.ListenerName, "--listen"}}
	if cfg.ExposeControlPlane != "" {
		binds = append(binds, struct{ addr, name, flag string }{cfg.ExposeControlPlane, envoy.ControlPlaneListenerName, "--expose-control-plane"})
	}
	if cfg.ExposeWebhook != "" {
		binds = append(binds, struct{ addr, name, flag string }{cfg.ExposeWebhook, envoy.ControlPlaneWebhookListenerName, "--expose-webhook"})
	}
	var lns []*listener
	closeAll := func() {
		for _, l := range lns {
			_ = l.ln.Close()
		}
	}
	for _, b := range binds {
		ln, err := net.Listen("tcp", b.addr)
		if err != nil {
			closeAll()
			return nil, fmt.Errorf("gateway: listening on %s: %w; free the port or choose another with %s", b.addr, err, b.flag)
		}
		lns = append(lns, &listener{name: b.name, ln: ln.(*net.TCPListener)})
	}
	adminLn, err := net.Listen("tcp", cfg.Admin)
	if err != nil {
		closeAll()
		return nil, fmt.Errorf("gateway: admin server on %s: %w; free the port or choose another with --admin", cfg.Admin, err)
	}
	g := &Gateway{
		cfg:     cfg,
		log:     cfg.Logger,
		lns:     lns,
		adminLn: adminLn,
		ready:   make(chan struct{}),
	}
	g.hellos.max, g.hellos.grace = cfg.MaxPendingHellos, cfg.HelloGrace
	g.killCtx, g.kill = context.WithCancel(context.Background())
	g.metrics = newMetrics(g.Table, func() float64 { return float64(g.openConns.Load()) },
		func() float64 { return float64(g.hellos.len()) })
	g.ads = newADSClient(cfg, g.metrics, g.publish, g.onReady)
	return g, nil
}

// publish installs the tables of a new configuration, one per listener in
// the order of g.lns.
func (g *Gateway) publish(tables []*Table) {
	for i, t := range tables {
		g.lns[i].table.Store(t)
	}
}

// Addr is the address connections are accepted on (the main listener's).
func (g *Gateway) Addr() net.Addr { return g.lns[0].ln.Addr() }

// ControlPlaneAddr is the address of the control plane's listener
// (Config.ExposeControlPlane); nil when there is none.
func (g *Gateway) ControlPlaneAddr() net.Addr {
	if l := g.controlPlane(); l != nil {
		return l.ln.Addr()
	}
	return nil
}

// controlPlane is the control plane's listener, nil when there is none.
func (g *Gateway) controlPlane() *listener { return g.listenerNamed(envoy.ControlPlaneListenerName) }

// webhook is the webhook's listener, nil when there is none.
func (g *Gateway) webhook() *listener { return g.listenerNamed(envoy.ControlPlaneWebhookListenerName) }

// listenerNamed is the listener other than the main one that runs LDS
// listener name; nil when there is none.
func (g *Gateway) listenerNamed(name string) *listener {
	for _, l := range g.lns[1:] {
		if l.name == name {
			return l
		}
	}
	return nil
}

// WebhookAddr is the address of the webhook's listener
// (Config.ExposeWebhook); nil when there is none.
func (g *Gateway) WebhookAddr() net.Addr {
	if l := g.webhook(); l != nil {
		return l.ln.Addr()
	}
	return nil
}

// WebhookTable is the routing table of the webhook's listener, as
// ControlPlaneTable is the control plane's.
func (g *Gateway) WebhookTable() *Table {
	if l := g.webhook(); l != nil {
		return l.table.Load()
	}
	return nil
}

// AdminAddr is the address of the admin HTTP server.
func (g *Gateway) AdminAddr() net.Addr { return g.adminLn.Addr() }

// Ready is closed once the first full configuration (LDS, CDS and the EDS
// of every cluster) is applied and connections are accepted.
func (g *Gateway) Ready() <-chan struct{} { return g.ready }

// Table is the routing table of the main listener; nil before the first
// configuration. It must not be modified.
func (g *Gateway) Table() *Table { return g.lns[0].table.Load() }

// ControlPlaneTable is the routing table of the control plane's listener;
// nil before the first configuration or when there is no such listener.
// Its clusters are the main table's. It must not be modified.
func (g *Gateway) ControlPlaneTable() *Table {
	if l := g.controlPlane(); l != nil {
		return l.table.Load()
	}
	return nil
}

// Run connects to the control plane and serves until ctx ends; then it
// drains (see Drain) for at most Config.Drain, closes what is still open,
// stops the ADS client and the admin server, and returns. A broken ADS stream is reopened with backoff;
// the last good configuration keeps serving meanwhile. Run may be called
// once.
func (g *Gateway) Run(ctx context.Context) error {
	if !g.started.CompareAndSwap(false, true) {
		return errors.New("gateway: Run called twice")
	}
	defer g.kill()
	creds := insecure.NewCredentials()
	if g.cfg.XDSTLS != nil {
		creds = credentials.NewTLS(g.cfg.XDSTLS)
	}
	conn, err := grpc.NewClient(g.cfg.XDS,
		grpc.WithTransportCredentials(creds),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(maxXDSMessage)),
		// Reconnect on the same schedule as the ADS stream.
		grpc.WithConnectParams(grpc.ConnectParams{Backoff: backoff.Config{
			BaseDelay: g.cfg.ReconnectDelay, Multiplier: 2, Jitter: 0.25, MaxDelay: MaxReconnectDelay,
		}}))
	if err != nil {
		_ = g.Close()
		return fmt.Errorf("gateway: xDS address %q: %w", g.cfg.XDS, err)
	}
	defer func() { _ = conn.Close() }()

	admin := &http.Server{Handler: g.adminHandler(), ReadHeaderTimeout: 10 * time.Second}
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := admin.Serve(g.adminLn); !errors.Is(err, http.ErrServerClosed) {
			g.log.Warn("admin server stopped", "error", err)
		}
	})
	adsCtx, stopADS := context.WithCancel(ctx)
	wg.Go(func() { g.ads.run(adsCtx, conn) })
	attrs := []any{"listen", g.Addr().String(), "admin", g.AdminAddr().String(),
		"xds", g.cfg.XDS, "xds_tls", g.cfg.XDSTLS != nil, "network", g.cfg.Network, "cluster", g.cfg.ClusterID, "node", g.cfg.NodeID}
	if a := g.ControlPlaneAddr(); a != nil {
		attrs = append(attrs, "control_plane", a.String())
	}
	g.log.Info("gateway started", attrs...)

	<-ctx.Done()
	drainCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), g.cfg.Drain)
	// Closing what is still open when the drain time is up is the
	// expected end of a drain, not a failure of Run: Drain logs it.
	_ = g.Drain(drainCtx)
	cancel()
	stopADS()
	_ = admin.Close()
	wg.Wait()
	return nil
}

// Drain stops accepting connections (the listeners are closed and /ready
// answers 503), waits for the open ones to end, and returns. When ctx ends
// first, the remaining connections are closed and Drain returns an error
// wrapping ctx's. Calling it again waits again.
func (g *Gateway) Drain(ctx context.Context) error {
	g.mu.Lock()
	first := !g.drained
	g.drained = true
	g.mu.Unlock()
	if first {
		g.draining.Store(true)
		for _, l := range g.lns {
			_ = l.ln.Close()
		}
		g.log.Info("draining: no longer accepting connections")
	}
	done := make(chan struct{})
	go func() {
		g.conns.Wait()
		close(done)
	}()
	select {
	case <-done:
		g.log.Info("drained")
		return nil
	case <-ctx.Done():
	}
	open := g.openConns.Load()
	g.kill()
	<-done
	g.log.Info("drain time is up; closed the remaining connections", "closed", open)
	return fmt.Errorf("gateway: drain: closed %d connections still open: %w", open, ctx.Err())
}

// Close releases the listeners of a Gateway that Run is not serving, and
// closes any connection still open. Run releases them itself.
func (g *Gateway) Close() error {
	g.mu.Lock()
	g.drained = true
	g.mu.Unlock()
	g.draining.Store(true)
	g.kill()
	var errs []error
	for _, l := range g.lns {
		if err := l.ln.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			errs = append(errs, err)
		}
	}
	if err := g.adminLn.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// onReady is the ADS client's signal that the first full configuration is
// in place: the gateway starts accepting.
func (g *Gateway) onReady() {
	g.readyOnce.Do(func() {
		g.mu.Lock()
		defer g.mu.Unlock()
		if g.drained {
			return
		}
		for _, l := range g.lns {
			g.conns.Add(1)
			go g.acceptLoop(l)
			g.log.Info("first configuration applied; accepting connections", "listener", l.name, "addr", l.ln.Addr().String())
		}
		close(g.ready)
	})
}

// acceptLoop accepts on l until it is closed.
func (g *Gateway) acceptLoop(l *listener) {
	defer g.conns.Done()
	var delay time.Duration
	for {
		c, err := l.ln.AcceptTCP()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of file descriptors and the like: back off as net/http
			// does, rather than spin.
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			g.log.Warn("accept failed; retrying", "error", err, "after", delay)
			time.Sleep(delay)
			continue
		}
		delay = 0
		pc := g.hellos.add(c, time.Now())
		if pc == nil {
			g.metrics.accepted.Inc()
			g.metrics.errors[reasonHelloLimit].Inc()
			_ = c.SetLinger(0) // a reset: nothing lingers in TIME_WAIT
			_ = c.Close()
			continue
		}
		g.conns.Add(1)
		go g.serveConn(l, pc)
	}
}

// serveConn reads the client's ClientHello, picks the endpoint its SNI
// routes to in l's table, replays the bytes read and then passes bytes
// both ways until both sides are done.
func (g *Gateway) serveConn(l *listener, pc *pendingConn) {
	c := pc.c
	defer g.conns.Done()
	g.metrics.accepted.Inc()
	g.openConns.Add(1)
	defer g.openConns.Add(-1)
	stopKill := context.AfterFunc(g.killCtx, func() { _ = c.Close() })

	buf := g.bufs.get()
	up, cl, hello, r, err := g.open(l, pc, buf)
	replayed := len(*buf)
	g.bufs.put(buf)
	if err != nil {
		stopKill()
		_ = c.Close()
		if g.killCtx.Err() == nil {
			g.metrics.errors[r].Inc()
			g.log.Debug("connection refused", "listener", l.name, "client", c.RemoteAddr().String(), "reason", r.String(),
				"sni", hello.serverName, "error", err)
		}
		return
	}
	if !stopKill() { // closed by Drain while connecting
		_ = c.Close()
		_ = up.Close()
		return
	}
	defer context.AfterFunc(g.killCtx, func() {
		_ = c.Close()
		_ = up.Close()
	})()

	cl.stats.connections.Add(1)
	cl.stats.active.Add(1)
	defer cl.stats.active.Add(-1)
	in, out := pipe(c, up)
	g.metrics.bytesIn.Add(float64(int64(replayed) + in))
	g.metrics.bytesOut.Add(float64(out))
}

// open does everything before the bytes flow: the ClientHello (within
// HelloTimeout), the route, the endpoint, the dial, and the replay of what
// was read. On error it returns why, for the metrics.
func (g *Gateway) open(l *listener, pc *pendingConn, buf *[]byte) (*net.TCPConn, *Cluster, clientHello, reason, error) {
	c := pc.c
	var h clientHello
	evicted := fmt.Errorf("closed mid-hello to make room: more than %d connections were waiting for their ClientHello", g.cfg.MaxPendingHellos)
	if err := c.SetReadDeadline(time.Now().Add(g.cfg.HelloTimeout)); err != nil {
		if g.hellos.done(pc) { // closed before it was read from
			return nil, nil, h, reasonHelloLimit, evicted
		}
		return nil, nil, h, reasonBadHello, err
	}
	h, err := readHello(c, buf)
	if g.hellos.done(pc) {
		return nil, nil, h, reasonHelloLimit, evicted
	}
	if err != nil {
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return nil, nil, h, reasonHelloTimeout, fmt.Errorf("no complete TLS ClientHello within %v: %w", g.cfg.HelloTimeout, err)
		}
		return nil, nil, h, reasonBadHello, err
	}
	if err := c.SetReadDeadline(time.Time{}); err != nil {
		return nil, nil, h, reasonBadHello, err
	}
	route := l.table.Load().Route(h.serverName, h.alpn)
	switch {
	case route == nil:
		return nil, nil, h, reasonNoRoute, fmt.Errorf("no filter chain matches server name %q with ALPN %q", h.serverName, h.alpn)
	case route.Cluster == nil:
		return nil, nil, h, reasonNoCluster, fmt.Errorf("filter chain %q routes to cluster %q, which CDS does not hold", route.Name, route.ClusterName)
	}
	ep, ok := route.Cluster.pick()
	if !ok {
		return nil, nil, h, reasonNoEndpoints, fmt.Errorf("cluster %q has no usable endpoint", route.Cluster.Name)
	}
	ctx, cancel := context.WithTimeout(g.killCtx, route.Cluster.ConnectTimeout)
	defer cancel()
	uc, err := g.dialer.DialContext(ctx, "tcp", ep.dial)
	if err != nil {
		return nil, nil, h, reasonDialFailed, fmt.Errorf("cluster %q: %w", route.Cluster.Name, err)
	}
	up := uc.(*net.TCPConn)
	if _, err := up.Write(*buf); err != nil {
		_ = up.Close()
		return nil, nil, h, reasonDialFailed, fmt.Errorf("cluster %q: replaying the ClientHello to %s: %w", route.Cluster.Name, ep.dial, err)
	}
	return up, route.Cluster, h, 0, nil
}

// pipe copies bytes both ways between c and up until both directions are
// done, and closes both. Between two *net.TCPConn, io.Copy uses splice(2)
// on Linux: the bytes do not pass through user space. A direction that
// ends cleanly (EOF) half-closes the other side (CloseWrite), so protocols
// that shut down one way keep working; a direction that fails closes both
// connections. in counts bytes from c to up, out from up to c.
func pipe(c, up *net.TCPConn) (in, out int64) {
	done := make(chan int64, 1)
	go func() {
		n, err := io.Copy(up, c)
		endCopy(up, c, err)
		done <- n
	}()
	out, err := io.Copy(c, up)
	endCopy(c, up, err)
	in = <-done
	_ = c.Close()
	_ = up.Close()
	return in, out
}

// endCopy ends one direction of a pipe: dst gets the EOF src sent, or both
// are closed when the copy failed.
func endCopy(dst, src *net.TCPConn, err error) {
	if err == nil {
		_ = dst.CloseWrite()
		return
	}
	_ = dst.Close()
	_ = src.Close()
}
