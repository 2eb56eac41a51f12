package ca

import (
	"cmp"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/kubernetes"

	"github.com/causeway-mesh/causeway/internal/model"
	"github.com/causeway-mesh/causeway/internal/pki"
)

// Istio's names, which workloads, agents and tools rely on.
const (
	// PluginSecretName is the plug-in CA Secret of the system namespace
	// (ca-cert.pem, ca-key.pem, root-cert.pem, cert-chain.pem).
	PluginSecretName = "cacerts"
	// SelfSignedSecretName keeps the self-signed root made when there is no
	// plug-in CA (ca-cert.pem, ca-key.pem).
	SelfSignedSecretName = "istio-ca-secret"
	// RootConfigMapName is the ConfigMap of every namespace that holds the
	// root workloads verify their peers with.
	RootConfigMapName = "istio-ca-root-cert"
	// RootConfigMapKey is its key.
	RootConfigMapKey = "root-cert.pem"
	// ClusterIDMetadataKey is the gRPC metadata key in which Istio's agents
	// name the cluster their token comes from.
	ClusterIDMetadataKey = "clusterid"
	// WriterAnnotation, on a root ConfigMap, names the replica of the
	// control plane that last wrote it (Config.Writer).
	WriterAnnotation = "causeway.io/written-by"
	// selfSignedSecretType is the type Istio gives istio-ca-secret.
	selfSignedSecretType = "istio.io/ca-root"
)

// Defaults of [Config].
const (
	DefaultSystemNamespace = "istio-system"
	DefaultTrustDomain     = "cluster.local"
	// DefaultAudience is the audience Istio's agents request their tokens for.
	DefaultAudience = "istio-ca"
	// DefaultWorkloadTTL is the validity of a workload certificate when the
	// request names none (Istio's 24h).
	DefaultWorkloadTTL = pki.DefaultWorkloadTTL
	// DefaultWorkloadTTLMax caps what a request may ask for (Istio's
	// max-workload-cert-ttl, 90 days).
	DefaultWorkloadTTLMax = 90 * 24 * time.Hour
	// DefaultServingTTL is the validity of the control plane's serving
	// certificate; it is renewed at two thirds of it.
	DefaultServingTTL = pki.DefaultServingTTL
	// minServingTTL keeps rotation from spinning: certificate times have
	// a precision of a second, so a shorter lifetime may be none.
	minServingTTL = 2 * time.Second
)

// ClusterLookup returns the client of a cluster the control plane knows,
// by id; false when it knows none by that name.
type ClusterLookup func(id model.ClusterID) (kubernetes.Interface, bool)

// Config configures an [Authority].
type Config struct {
	// ClusterID is the config cluster's id (--cluster-id); requests without
	// cluster metadata are checked there. Required.
	ClusterID model.ClusterID
	// Client reaches the config cluster: the plug-in CA Secret and
	// istio-ca-secret are in its SystemNamespace. Required.
	Client kubernetes.Interface
	// Clusters finds the other clusters whose workloads may ask for
	// certificates (remote clusters of remote secrets). The config cluster
	// is found through Client when Clusters does not name it. Nil: the
	// config cluster only.
	Clusters ClusterLookup
	// NewReviewer builds the token reviewer of a cluster from its client.
	// Default NewKubeReviewer (a TokenReview per request).
	NewReviewer func(kubernetes.Interface) TokenReviewer
	// SystemNamespace holds the CA Secrets. Default istio-system.
	SystemNamespace string
	// TrustDomain is the SPIFFE trust domain of workload identities, and
	// the O of a self-signed root. Default cluster.local.
	TrustDomain string
	// Audiences are the token audiences accepted besides the API server's
	// own (default audience). Default ["istio-ca"].
	Audiences []string
	// NoDefaultAudience refuses tokens that are valid only for the API
	// server's default audience.
	NoDefaultAudience bool
	// WorkloadTTL is the validity of a workload certificate when the
	// request asks for none. Default 24h; at most WorkloadTTLMax.
	WorkloadTTL time.Duration
	// WorkloadTTLMax caps the validity a request may ask for: longer
	// requests are clamped to it. Default 90 days.
	WorkloadTTLMax time.Duration
	// Revision is the control plane's revision; when set (and not
	// "default") the serving certificate also names istiod-REV.NS.svc.
	Revision string
	// CustomHosts are more DNS names of the serving certificate: the
	// addresses proxies and agents reach the control plane at (Istio's
	// ISTIOD_CUSTOM_HOST).
	CustomHosts []string
	// ServingTTL is the validity of the serving certificate. Default 24h.
	ServingTTL time.Duration
	// ReviewQPS and ReviewBurst bound the TokenReviews sent to each
	// cluster (a token bucket); requests beyond it fail with Unavailable
	// at once. Defaults DefaultReviewQPS and DefaultReviewBurst.
	ReviewQPS   float64
	ReviewBurst int
	// ReviewCacheSize bounds the remembered TokenReview results (accepted
	// tokens for ReviewCacheTTL, refused ones for ReviewNegativeTTL).
	// Default DefaultReviewCacheSize.
	ReviewCacheSize int
	// Writer names this replica (its leader-election identity): the root
	// ConfigMaps it writes carry it in the annotation WriterAnnotation.
	// Empty: no annotation.
	Writer string
	// Registry receives the CA's metrics. Nil: they are not registered.
	Registry prometheus.Registerer
	// Logger receives the CA's logs. Required.
	Logger *slog.Logger
}

// Authority is the running CA. Create it with [New], start it with
// [Authority.Run]; publish the root into clusters with
// [Authority.PublishRoot], serve CreateCertificate with
// [Authority.Register] and TLS with [Authority.ServingTLSConfig]. Its
// methods are safe for concurrent use.
type Authority struct {
	cfg      Config
	log      *slog.Logger
	metrics  *metrics
	dnsNames []string
	// manager is the field manager of the ConfigMaps it writes; it names
	// the config cluster, so that the control plane of another cluster can
	// tell whose root a ConfigMap holds.
	manager string
	// reviews caches and rate-limits TokenReviews.
	reviews *reviewGate

	running atomic.Bool
	state   atomic.Pointer[caState]
	serving atomic.Pointer[servingCert]
	tlsBase *tls.Config
}

// caState is the CA in use, immutable once published. changed is closed
// when a newer state replaces it.
type caState struct {
	ca      *pki.CA
	source  string // "Secret NS/NAME"
	hash    [sha256.Size]byte
	root    []byte
	tls     *tls.Config
	changed chan struct{}
}

// New checks cfg and builds the authority. Nothing runs until
// [Authority.Run]; until the CA is loaded, requests fail with Unavailable.
func New(cfg Config) (*Authority, error) {
	switch {
	case cfg.Logger == nil:
		return nil, errors.New("ca: Config.Logger is nil")
	case cfg.ClusterID == "":
		return nil, errors.New("ca: Config.ClusterID is empty: set --cluster-id")
	case cfg.Client == nil:
		return nil, errors.New("ca: Config.Client is nil")
	case cfg.ReviewQPS < 0 || cfg.ReviewBurst < 0 || cfg.ReviewCacheSize < 0:
		return nil, fmt.Errorf("ca: token review limits must not be negative (qps %v, burst %d, cache %d)", cfg.ReviewQPS, cfg.ReviewBurst, cfg.ReviewCacheSize)
	case cfg.WorkloadTTL < 0 || cfg.WorkloadTTLMax < 0 || cfg.ServingTTL < 0:
		return nil, fmt.Errorf("ca: a certificate lifetime is negative (workload %v, workload maximum %v, serving %v): give positive durations",
			cfg.WorkloadTTL, cfg.WorkloadTTLMax, cfg.ServingTTL)
	}
	cfg.SystemNamespace = cmp.Or(cfg.SystemNamespace, DefaultSystemNamespace)
	cfg.TrustDomain = cmp.Or(cfg.TrustDomain, DefaultTrustDomain)
	if errs := validation.IsDNS1123Subdomain(cfg.TrustDomain); len(errs) > 0 {
		return nil, fmt.Errorf("trust domain %q: %s; give a DNS name such as cluster.local", cfg.TrustDomain, strings.Join(errs, "; "))
	}
	if cfg.Audiences == nil {
		cfg.Audiences = []string{DefaultAudience}
	}
	if slices.Contains(cfg.Audiences, "") {
		return nil, errors.New("ca: an empty token audience in Config.Audiences")
	}
	if cfg.NewReviewer == nil {
		cfg.NewReviewer = NewKubeReviewer
	}
	cfg.ReviewQPS = cmp.Or(cfg.ReviewQPS, DefaultReviewQPS)
	cfg.ReviewBurst = cmp.Or(cfg.ReviewBurst, max(DefaultReviewBurst, int(cfg.ReviewQPS)))
	cfg.ReviewCacheSize = cmp.Or(cfg.ReviewCacheSize, DefaultReviewCacheSize)
	cfg.WorkloadTTLMax = cmp.Or(cfg.WorkloadTTLMax, DefaultWorkloadTTLMax)
	cfg.WorkloadTTL = cmp.Or(cfg.WorkloadTTL, DefaultWorkloadTTL)
	cfg.WorkloadTTL = min(cfg.WorkloadTTL, cfg.WorkloadTTLMax)
	cfg.ServingTTL = cmp.Or(cfg.ServingTTL, DefaultServingTTL)
	if cfg.ServingTTL < minServingTTL {
		return nil, fmt.Errorf("serving certificate lifetime %v: want at least %v", cfg.ServingTTL, minServingTTL)
	}
	names, err := ServingDNSNames(cfg.SystemNamespace, cfg.Revision, cfg.CustomHosts)
	if err != nil {
		return nil, err
	}
	m, err := newMetrics(cfg.Registry)
	if err != nil {
		return nil, err
	}
	a := &Authority{
		cfg:      cfg,
		log:      cfg.Logger.With("component", "ca"),
		metrics:  m,
		dnsNames: names,
		manager:  FieldManager(cfg.ClusterID),
		reviews:  newReviewGate(cfg.ReviewQPS, cfg.ReviewBurst, cfg.ReviewCacheSize, time.Now),
	}
	a.state.Store(&caState{changed: make(chan struct{})})
	a.tlsBase = &tls.Config{
		MinVersion:     tls.VersionTLS12,
		NextProtos:     []string{"h2"},
		GetCertificate: a.getCertificate,
		// A proxy that presents a workload certificate is verified against
		// the root; the CA call itself needs none (its token suffices).
		ClientAuth: tls.VerifyClientCertIfGiven,
	}
	return a, nil
}

// FieldManager is the field manager with which the control plane of a
// config cluster writes root ConfigMaps.
func FieldManager(configCluster model.ClusterID) string {
	return "causeway-" + string(configCluster)
}

// ServingDNSNames returns the DNS names of the control plane's serving
// certificate: istiod.NS.svc, istiod-REV.NS.svc when a revision other than
// "default" is set, istiod-remote.NS.svc (the name remote clusters reach it
// by), then every custom host, without duplicates. A custom host must be a
// lower-case DNS name, not an IP address or a URL.
func ServingDNSNames(namespace, revision string, customHosts []string) ([]string, error) {
	names := []string{"istiod." + namespace + ".svc"}
	if revision != "" && revision != "default" {
		names = append(names, "istiod-"+revision+"."+namespace+".svc")
	}
	names = append(names, "istiod-remote."+namespace+".svc")
	for _, n := range names {
		if errs := validation.IsDNS1123Subdomain(n); len(errs) > 0 {
			return nil, fmt.Errorf("serving certificate name %q (from the namespace %q and revision %q): %s",
				n, namespace, revision, strings.Join(errs, "; "))
		}
	}
	for _, h := range customHosts {
		if err := checkHost(h); err != nil {
			return nil, err
		}
		if !slices.Contains(names, h) {
			names = append(names, h)
		}
	}
	return names, nil
}

// checkHost checks a custom host.
func checkHost(h string) error {
	if net.ParseIP(h) != nil {
		return fmt.Errorf("custom host %q is an IP address: the serving certificate carries DNS names; give the host name proxies dial", h)
	}
	name := strings.TrimPrefix(h, "*.")
	if errs := validation.IsDNS1123Subdomain(name); len(errs) > 0 {
		return fmt.Errorf("custom host %q: %s; give a lower-case DNS name such as istiod-1-11-4.istio-system.svc", h, strings.Join(errs, "; "))
	}
	return nil
}

// WaitReady waits until the CA is loaded; it returns ctx's error if ctx
// ends first.
func (a *Authority) WaitReady(ctx context.Context) error {
	for {
		st := a.state.Load()
		if st.ca != nil {
			return nil
		}
		select {
		case <-st.changed:
		case <-ctx.Done():
			return fmt.Errorf("waiting for the CA: %w", ctx.Err())
		}
	}
}

// Root returns the PEM roots of the CA in use (what the istio-ca-root-cert
// ConfigMaps hold), nil before the CA is loaded.
func (a *Authority) Root() []byte {
	return a.state.Load().root
}

// install publishes a new CA. Only the source loop calls it.
func (a *Authority) install(ca *pki.CA, source string, hash [sha256.Size]byte) {
	root := ca.Root()
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(root)
	cfg := a.tlsBase.Clone()
	cfg.ClientCAs = pool
	st := &caState{ca: ca, source: source, hash: hash, root: root, tls: cfg, changed: make(chan struct{})}
	// The serving certificate of the new CA is ready before the CA is
	// published, so that no handshake finds the CA without one. On a
	// failure the rotation loop tries again.
	a.renewServing(st)
	old := a.state.Swap(st)
	close(old.changed)
}

// Status describes the CA in use, for the debug API.
type Status struct {
	// Loaded is false until the CA is loaded.
	Loaded bool `json:"loaded"`
	// Source is the Secret the CA comes from: NS/cacerts or
	// NS/istio-ca-secret.
	Source string `json:"source,omitempty"`
	// Roots are the SHA-256 fingerprints of the published roots.
	Roots []string `json:"roots,omitempty"`
	// CANotAfter is when the CA's chain expires.
	CANotAfter time.Time `json:"caNotAfter,omitzero"`
	// ServingDNSNames are the names of the serving certificate.
	ServingDNSNames []string `json:"servingDNSNames"`
	// ServingNotAfter is when the current serving certificate expires.
	ServingNotAfter time.Time `json:"servingNotAfter,omitzero"`
}

// Status describes the CA in use.
func (a *Authority) Status() Status {
	st := a.state.Load()
	s := Status{ServingDNSNames: slices.Clone(a.dnsNames)}
	if st.ca == nil {
		return s
	}
	s.Loaded, s.Source, s.CANotAfter = true, st.source, st.ca.NotAfter()
	if infos, err := pki.Inspect(st.root); err == nil {
		for i := range infos {
			s.Roots = append(s.Roots, infos[i].SHA256)
		}
	}
	if sc := a.serving.Load(); sc != nil {
		s.ServingNotAfter = sc.cert.Leaf.NotAfter
	}
	return s
}

// DebugHandler serves [Authority.Status] as JSON (for /debug/ca).
func (a *Authority) DebugHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(a.Status())
	})
}

// Run loads the CA (the plug-in CA Secret, else istio-ca-secret, made if
// missing), keeps it current as those Secrets change, and keeps the serving
// certificate fresh, until ctx is done. It returns an error when no CA can
// be loaded at start (a broken plug-in CA, no permission to read or write
// the Secrets); later failures keep the CA in use and are logged and
// counted. An Authority runs once.
func (a *Authority) Run(ctx context.Context) error {
	if !a.running.CompareAndSwap(false, true) {
		return errors.New("ca: Authority.Run called twice")
	}
	src, err := newSource(a)
	if err != nil {
		return err
	}
	defer src.shutdown()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // before shutdown, which waits for the informers to stop
	if err := src.start(ctx); err != nil {
		return err
	}
	if ctx.Err() != nil {
		return nil
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		a.rotateServing(ctx)
	}()
	src.loop(ctx)
	<-done
	return nil
}

// apiTimeout bounds one call to an API server.
const apiTimeout = 10 * time.Second
