package server

import (
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/causeway-mesh/causeway/internal/inject"
)

// webhookTLS is the webhook's TLS configuration: the secure port's
// rotating serving certificate, offering HTTP/1.1 beside h2 (the API
// server's webhook client speaks either), asking for no client
// certificate.
func (s *Server) webhookTLS() *tls.Config {
	base := s.ca.ServingTLSConfig()
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetConfigForClient: func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
			c, err := base.GetConfigForClient(hello)
			if err != nil {
				return nil, err
			}
			c = c.Clone()
			c.NextProtos = []string{"h2", "http/1.1"}
			// Callers are not authenticated, as with istiod's webhook: a
			// caller that presents a client certificate (an API server's
			// AdmissionConfiguration kubeConfigFile may give it one) must
			// not fail the handshake because the mesh root did not sign it.
			c.ClientAuth, c.ClientCAs = tls.NoClientCert, nil
			return c, nil
		},
	}
}

// injector builds the sidecar injector from the server's configuration:
// the network of a pod is the model's decision, and so are native sidecars
// under --native-sidecars=auto (from the kubelet versions of the cluster's
// Nodes).
func (s *Server) injector() *inject.Injector {
	ic := s.cfg.Inject
	if ic.SystemNamespace == "" {
		ic.SystemNamespace = s.cfg.SystemNamespace
	}
	if ic.Revision == "" {
		ic.Revision = s.cfg.CA.Revision
	}
	if ic.ClusterID == "" {
		ic.ClusterID = s.cfg.ClusterID
	}
	if ic.TrustDomain == "" {
		ic.TrustDomain = s.cfg.CA.TrustDomain
	}
	if ic.Domain == "" {
		ic.Domain = s.cfg.Model.Domain
	}
	ic.Network = s.store.PodNetwork
	if ic.NativeSidecarsAuto && ic.NativeAuto == nil {
		ic.NativeAuto = s.store.NativeSidecars
	}
	return inject.New(ic)
}

// webhook is the injection webhook's listener and handler.
type webhook struct {
	ln      net.Listener
	handler http.Handler
}

// listener is wh's listener; nil for no webhook.
func (wh *webhook) listener() net.Listener {
	if wh == nil {
		return nil
	}
	return wh.ln
}

// listenWebhook builds the webhook and opens its listener; nil when there
// is none.
func (s *Server) listenWebhook() (*webhook, error) {
	if s.cfg.WebhookAddr == "" || s.ca == nil {
		return nil, nil
	}
	h, err := s.injector().Handler(s.log.With("component", "inject"), s.registry)
	if err != nil {
		return nil, err
	}
	ln, err := s.listenFn("--webhook-addr", s.cfg.WebhookAddr)
	if err != nil {
		return nil, fmt.Errorf("injection webhook: listen on %s: %w: pick another --webhook-addr", s.cfg.WebhookAddr, err)
	}
	s.addrMu.Lock()
	s.webhookAddr = ln.Addr()
	s.addrMu.Unlock()
	return &webhook{ln: ln, handler: h}, nil
}

// serveWebhook serves the injection webhook over TLS, as a member of g,
// until the returned server is shut down.
func (s *Server) serveWebhook(g *errgroup.Group, wh *webhook) *http.Server {
	ln := wh.ln
	srv := &http.Server{
		Handler:           wh.handler,
		TLSConfig:         s.webhookTLS(),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		MaxHeaderBytes:    64 << 10,
		IdleTimeout:       90 * time.Second,
	}
	s.log.Info("injection webhook listening", "addr", ln.Addr().String(), "path", inject.Path)
	g.Go(func() error { return served("injection webhook (--webhook-addr)", ln, srv.ServeTLS(ln, "", "")) })
	return srv
}

// WebhookAddr returns the injection webhook's listen address once Run has
// opened it, else nil.
func (s *Server) WebhookAddr() net.Addr {
	s.addrMu.Lock()
	defer s.addrMu.Unlock()
	return s.webhookAddr
}
