package server

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"
)

// DefaultDrainDuration is the drain window of `causeway serve`
// (--drain-duration): with drainMargin it fits in Kubernetes' default
// terminationGracePeriodSeconds of 30s.
const DefaultDrainDuration = 20 * time.Second

// drainMargin is how long the end of serving may take past the drain
// window (the last streams' handlers, GracefulStop's GOAWAYs, the HTTP
// servers' open requests) before everything is closed at once.
const drainMargin = 5 * time.Second

func listenTCP(_, addr string) (net.Listener, error) { return net.Listen("tcp", addr) }

// listeners are Run's open listeners; nil where there is none.
type listeners struct {
	debug, xds, xdsTLS net.Listener
	webhook            *webhook
}

func (l *listeners) close() {
	for _, ln := range []net.Listener{l.debug, l.xds, l.xdsTLS, l.webhook.listener()} {
		if ln != nil {
			_ = ln.Close()
		}
	}
}

// listen opens every configured listener, or none and an error that names
// the flag to change.
func (s *Server) listen() (*listeners, error) {
	lns := &listeners{}
	open := func(flag, what, addr string, dst *net.Listener, rec *net.Addr) error {
		ln, err := s.listenFn(flag, addr)
		if err != nil {
			return fmt.Errorf("%s: listen on %s: %w: pick another %s", what, addr, err, flag)
		}
		*dst = ln
		s.addrMu.Lock()
		*rec = ln.Addr()
		s.addrMu.Unlock()
		return nil
	}
	var err error
	if s.cfg.DebugAddr != "" {
		err = open("--debug-addr", "debug server", s.cfg.DebugAddr, &lns.debug, &s.debugAddr)
	}
	if err == nil && s.cfg.XDSAddr != "" {
		err = open("--xds-addr", "xDS server", s.cfg.XDSAddr, &lns.xds, &s.xdsAddr)
	}
	if err == nil && s.cfg.XDSTLSAddr != "" && s.ca != nil {
		err = open("--xds-tls-addr", "secure port", s.cfg.XDSTLSAddr, &lns.xdsTLS, &s.xdsTLSAddr)
	}
	if err == nil {
		lns.webhook, err = s.listenWebhook()
	}
	if err != nil {
		lns.close()
		return nil, err
	}
	return lns, nil
}

// serving is what Run serves its listeners with.
type serving struct {
	grpc    []*grpc.Server
	webhook *http.Server
	debug   *http.Server
}

// serve serves every listener, each as a member of g: one that fails ends
// g's context with an error naming it.
func (s *Server) serve(g *errgroup.Group, lns *listeners) *serving {
	srv := &serving{debug: &http.Server{Handler: s.debug, ReadHeaderTimeout: 5 * time.Second}}
	if ln := lns.xdsTLS; ln != nil {
		gs := grpc.NewServer(s.secureServerOptions()...)
		s.ca.Register(gs)
		s.xds.Register(gs)
		srv.grpc = append(srv.grpc, gs)
		s.log.Info("secure port listening (authenticated xDS over TLS, CA)", "addr", ln.Addr().String())
		g.Go(func() error { return served("secure port (xDS over mTLS, CA; --xds-tls-addr)", ln, gs.Serve(ln)) })
	}
	if lns.webhook != nil {
		srv.webhook = s.serveWebhook(g, lns.webhook)
	}
	if ln := lns.debug; ln != nil {
		s.log.Info("debug server listening", "addr", ln.Addr().String())
		g.Go(func() error { return served("debug server (--debug-addr)", ln, srv.debug.Serve(ln)) })
	}
	if ln := lns.xds; ln != nil {
		gs := grpc.NewServer(s.xds.GRPCServerOptions()...)
		s.xds.Register(gs)
		srv.grpc = append(srv.grpc, gs)
		s.log.Info("xDS server listening", "addr", ln.Addr().String())
		g.Go(func() error { return served("xDS server (--xds-addr)", ln, gs.Serve(ln)) })
	}
	return srv
}

// served is the result of a listener's Serve: nil after a stop, else an
// error naming the listener.
func served(name string, ln net.Listener, err error) error {
	if err == nil || errors.Is(err, grpc.ErrServerStopped) || errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return fmt.Errorf("%s on %s stopped serving: %w; causeway serve stops with it: restart it (if it recurs, check the host's file descriptor limit and network)",
		name, ln.Addr(), err)
}

// shutdown ends serving, when Run's context ended (SIGTERM) or a member of
// its group failed (cause). /ready turns false at once. The xDS ports stop
// accepting connections and send every connection a GOAWAY (gRPC's
// GracefulStop), and the xDS server refuses new streams and ends the open
// ones spread over the drain window (xds.Server.Drain), so that their
// proxies reconnect to other replicas a few at a time. The webhook
// finishes its open requests. When the streams are gone, or at the
// latest drainMargin after the window, every listener is closed; the
// debug server (/ready, /metrics) goes last.
func (s *Server) shutdown(srv *serving, cause error) {
	reason := "draining: the control plane is shutting down"
	if cause != nil {
		reason = "stopping: " + cause.Error()
		s.log.Error("stopping", "err", cause)
	}
	s.ready.Store(&readiness{reason: reason})
	start := time.Now()
	window := s.cfg.DrainDuration
	ctx, cancel := context.WithTimeout(context.Background(), window+drainMargin)
	defer cancel()

	var stopping sync.WaitGroup
	for _, gs := range srv.grpc {
		stopping.Go(gs.GracefulStop) // returns once the drain ended its streams
	}
	if srv.webhook != nil {
		stopping.Go(func() {
			if srv.webhook.Shutdown(ctx) != nil {
				_ = srv.webhook.Close()
			}
		})
	}
	n := s.xds.Drain(ctx, window)
	stopped := make(chan struct{})
	go func() {
		stopping.Wait()
		close(stopped)
	}()
	select {
	case <-stopped:
	case <-ctx.Done():
		s.log.Info("drain margin over; closing what is left", "margin", drainMargin)
		for _, gs := range srv.grpc {
			gs.Stop()
		}
		<-stopped
	}
	if srv.debug.Shutdown(ctx) != nil {
		_ = srv.debug.Close()
	}
	s.log.Info("drained", "streams", n, "window", window, "duration", time.Since(start).Round(time.Millisecond))
}
