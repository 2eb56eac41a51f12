package ca

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/informers"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"

	"github.com/causeway-mesh/causeway/internal/pki"
)

// Retry delays of a failed load that may succeed by itself (an API error).
const (
	retryMin = time.Second
	retryMax = time.Minute
)

// source watches the two CA Secrets of the config cluster's system
// namespace, each through an informer of its own name, and loads the CA
// from them: the plug-in CA when cacerts exists, else istio-ca-secret,
// which it makes (a new self-signed root) when it is missing too.
type source struct {
	a         *Authority
	factories []informers.SharedInformerFactory
	plugin    corelisters.SecretNamespaceLister
	self      corelisters.SecretNamespaceLister
	synced    []cache.InformerSynced
	// signal holds one pending "a Secret changed"; handlers never block.
	signal chan struct{}
	retry  time.Duration
	// lastErr is the latest load error, logged once until it changes.
	lastErr string
	// failed identifies the content that failed to load last, and
	// failedErr says why: the same content is not tried again.
	failed    [sha256.Size]byte
	failedErr error
}

func newSource(a *Authority) (*source, error) {
	s := &source{a: a, signal: make(chan struct{}, 1)}
	ns := a.cfg.SystemNamespace
	handler := cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { s.poke() },
		UpdateFunc: func(any, any) { s.poke() },
		DeleteFunc: func(any) { s.poke() },
	}
	for _, name := range []string{PluginSecretName, SelfSignedSecretName} {
		f := informers.NewSharedInformerFactoryWithOptions(a.cfg.Client, 0,
			informers.WithNamespace(ns),
			informers.WithTweakListOptions(func(o *metav1.ListOptions) {
				o.FieldSelector = fields.OneTermEqualSelector("metadata.name", name).String()
			}),
			informers.WithTransform(stripManagedFields))
		secrets := f.Core().V1().Secrets()
		reg, err := secrets.Informer().AddEventHandler(handler)
		if err != nil {
			return nil, fmt.Errorf("ca: watch Secret %s/%s: %w", ns, name, err)
		}
		s.synced = append(s.synced, reg.HasSynced)
		s.factories = append(s.factories, f)
		if name == PluginSecretName {
			s.plugin = secrets.Lister().Secrets(ns)
		} else {
			s.self = secrets.Lister().Secrets(ns)
		}
	}
	return s, nil
}

// stripManagedFields drops what the CA never reads from cached objects.
func stripManagedFields(obj any) (any, error) {
	if m, ok := obj.(metav1.Object); ok {
		m.SetManagedFields(nil)
	}
	return obj, nil
}

func (s *source) poke() {
	select {
	case s.signal <- struct{}{}:
	default:
	}
}

// start starts the informers and loads the CA once: an error here means
// the control plane has no CA to start with.
func (s *source) start(ctx context.Context) error {
	for _, f := range s.factories {
		f.Start(ctx.Done())
	}
	if !cache.WaitForCacheSync(ctx.Done(), s.synced...) {
		return nil // ctx ended
	}
	// The first load happens now: drain the events of the initial list.
	select {
	case <-s.signal:
	default:
	}
	_, err := s.load(ctx)
	return err
}

// loop reloads the CA whenever one of its Secrets changes, until ctx ends.
func (s *source) loop(ctx context.Context) {
	var (
		timer *time.Timer
		fire  <-chan time.Time
	)
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.signal:
		case <-fire:
		}
		if timer != nil {
			timer.Stop()
			timer, fire = nil, nil
		}
		retry, err := s.load(ctx)
		switch {
		case err == nil:
			s.retry = 0
		case retry:
			s.retry = min(max(2*s.retry, retryMin), retryMax)
			timer = time.NewTimer(s.retry)
			fire = timer.C
		}
	}
}

func (s *source) shutdown() {
	for _, f := range s.factories {
		f.Shutdown()
	}
}

// load reads the Secrets and, when they hold another CA than the one in
// use, installs it. On an error the CA in use stays; retry says whether
// trying again later may help (an API error) or only a change of the Secret
// will (bad content).
func (s *source) load(ctx context.Context) (retry bool, err error) {
	retry, err = s.loadOnce(ctx)
	if err != nil {
		if msg := err.Error(); msg != s.lastErr {
			s.lastErr = msg
			if s.a.state.Load().ca != nil {
				s.a.log.Info("CA not reloaded; keeping the CA in use", "err", err)
			}
		}
		return retry, err
	}
	s.lastErr = ""
	return false, nil
}

func (s *source) loadOnce(ctx context.Context) (retry bool, err error) {
	ns := s.a.cfg.SystemNamespace
	cur := s.a.state.Load()
	secret, err := s.plugin.Get(PluginSecretName)
	switch {
	case err == nil:
		return s.use(secret, cur, func(err error) error {
			return fmt.Errorf("plug-in CA Secret %s/%s: %w; fix it (`causeway certs inspect --secret %s/%s` shows every certificate), or delete it to use a self-signed root",
				ns, PluginSecretName, err, ns, PluginSecretName)
		})
	case !apierrors.IsNotFound(err):
		return true, fmt.Errorf("read Secret %s/%s: %w", ns, PluginSecretName, err)
	}
	secret, err = s.self.Get(SelfSignedSecretName)
	if apierrors.IsNotFound(err) {
		secret, err = s.makeSelfSigned(ctx)
	}
	if err != nil {
		return true, err
	}
	return s.use(secret, cur, func(err error) error {
		return fmt.Errorf("self-signed CA Secret %s/%s: %w; delete it to have a new root made (every workload then needs a new certificate), or plug in a CA as Secret %s",
			ns, SelfSignedSecretName, err, PluginSecretName)
	})
}

// use installs the CA of secret unless it is the one in use. A CA that is
// not valid yet (clocks apart) is tried again later; other failures only
// once per content.
func (s *source) use(secret *corev1.Secret, cur *caState, wrap func(error) error) (retry bool, err error) {
	b := pki.BundleFromData(secret.Data)
	h := bundleHash(secret.Name, b)
	if cur.ca != nil && cur.hash == h {
		return false, nil
	}
	if s.failedErr != nil && s.failed == h {
		return false, s.failedErr
	}
	name := secret.Namespace + "/" + secret.Name
	ca, err := pki.NewCA(b)
	if err != nil {
		s.a.metrics.loads.WithLabelValues(secret.Name, "error").Inc()
		if errors.Is(err, pki.ErrNotYetValid) {
			return true, wrap(err)
		}
		s.failed, s.failedErr = h, wrap(err)
		return false, s.failedErr
	}
	s.failedErr = nil
	s.a.metrics.loads.WithLabelValues(secret.Name, "ok").Inc()
	attrs := []any{"secret", name, "roots", fingerprints(ca.Root()), "notAfter", ca.NotAfter().UTC().Format(time.RFC3339)}
	if cur.ca != nil {
		attrs = append(attrs, "previous", cur.source)
	}
	s.a.log.Info("CA loaded", attrs...)
	s.a.install(ca, name, h)
	if secret.Name == SelfSignedSecretName {
		s.a.log.Warn("signing with a self-signed root: workloads of other clusters trust this cluster's workloads only if every cluster's CA shares one root; plug in an intermediate of a shared root as the plug-in CA Secret (causeway certs root, then causeway certs intermediate --apply)",
			"secret", name, "pluginSecret", secret.Namespace+"/"+PluginSecretName)
	}
	return false, nil
}

// makeSelfSigned makes a self-signed root and keeps it in istio-ca-secret.
// If another replica made one first, that one is used.
func (s *source) makeSelfSigned(ctx context.Context) (*corev1.Secret, error) {
	ns := s.a.cfg.SystemNamespace
	ca, err := pki.NewSelfSignedCA(pki.RootOptions{Org: s.a.cfg.TrustDomain})
	if err != nil {
		return nil, fmt.Errorf("make a self-signed root: %w", err)
	}
	b := ca.Bundle()
	secret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: SelfSignedSecretName, Namespace: ns},
		Type:       selfSignedSecretType,
		Data:       map[string][]byte{pki.FileCACert: b.CACert, pki.FileCAKey: b.CAKey},
	}
	ctx, cancel := context.WithTimeout(ctx, apiTimeout)
	defer cancel()
	secrets := s.a.cfg.Client.CoreV1().Secrets(ns)
	created, err := secrets.Create(ctx, secret, metav1.CreateOptions{FieldManager: s.a.manager})
	switch {
	case err == nil:
		s.a.log.Info("made a self-signed root", "secret", ns+"/"+SelfSignedSecretName, "roots", fingerprints(ca.Root()))
		return created, nil
	case apierrors.IsAlreadyExists(err):
		got, err := secrets.Get(ctx, SelfSignedSecretName, metav1.GetOptions{})
		if err != nil {
			return nil, fmt.Errorf("read Secret %s/%s: %w", ns, SelfSignedSecretName, err)
		}
		return got, nil
	case apierrors.IsNotFound(err):
		return nil, fmt.Errorf("keep the self-signed root in Secret %s/%s: namespace %s does not exist in the config cluster: create it, or set the system namespace: %w",
			ns, SelfSignedSecretName, ns, err)
	case apierrors.IsForbidden(err):
		return nil, fmt.Errorf("keep the self-signed root in Secret %s/%s: %w: grant the control plane create on secrets in %s, or plug in a CA as Secret %s",
			ns, SelfSignedSecretName, err, ns, PluginSecretName)
	default:
		return nil, fmt.Errorf("keep the self-signed root in Secret %s/%s: %w", ns, SelfSignedSecretName, err)
	}
}

// bundleHash identifies a CA by the Secret it comes from and its content.
func bundleHash(secret string, b pki.Bundle) [sha256.Size]byte {
	h := sha256.New()
	for _, part := range [][]byte{[]byte(secret), b.CACert, b.CAKey, b.RootCert, b.CertChain} {
		fmt.Fprintf(h, "%d:", len(part))
		h.Write(part)
	}
	var out [sha256.Size]byte
	h.Sum(out[:0])
	return out
}

// fingerprints returns the SHA-256 fingerprints of the PEM certificates, for
// logs.
func fingerprints(pemBytes []byte) string {
	infos, err := pki.Inspect(pemBytes)
	if err != nil {
		return "(" + err.Error() + ")"
	}
	fps := make([]string, len(infos))
	for i := range infos {
		fps[i] = infos[i].SHA256
	}
	return strings.Join(fps, ",")
}

// errNoCA is returned while no CA is loaded.
var errNoCA = errors.New("the CA is not loaded yet")
