package kube

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	istioclient "istio.io/client-go/pkg/clientset/versioned"
	networkinglisters "istio.io/client-go/pkg/listers/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/tools/cache"

	"github.com/causeway-mesh/causeway/internal/model"
)

// networkingGroupVersion is where Istio serves Gateway and VirtualService.
var networkingGroupVersion = networkingv1.SchemeGroupVersion.String()

// MaxGatewayRoutes bounds the tls route matches read from VirtualServices
// bound to Gateways; the rest are left out and logged.
const MaxGatewayRoutes = 4096

// GatewayConfigWatchConfig configures a GatewayConfigWatch.
type GatewayConfigWatchConfig struct {
	// Istio is the config cluster's Istio client. Required.
	Istio istioclient.Interface
	// Store receives the config (model.Store.SetGatewayConfig). Required.
	Store *model.Store
	// Changed is called after the store may have changed.
	Changed func()
	// Domain resolves short destination hosts; default cluster.local.
	Domain string
	// Recheck is how often it asks again whether the cluster serves
	// Gateways and VirtualServices, while it does not; default
	// DefaultPeerAuthRecheck.
	Recheck time.Duration
	Logger  *slog.Logger
}

// GatewayConfigWatch keeps the store's model.GatewayConfig equal to what
// Istio's Gateways and VirtualServices (networking.istio.io/v1) of one
// cluster say. Istiod reads them from its config cluster only, and so
// does Causeway: the watch runs on the config cluster.
//
// It is level-based: every event of either informer marks the config
// dirty, and one sync reads both listers whole and hands the store the
// result (the store ignores an equal config).
type GatewayConfigWatch struct {
	cfg   GatewayConfigWatchConfig
	log   *slog.Logger
	dirty chan struct{}
}

// NewGatewayConfigWatch checks cfg and builds the watch; nothing runs
// until Run.
func NewGatewayConfigWatch(cfg GatewayConfigWatchConfig) (*GatewayConfigWatch, error) {
	if cfg.Istio == nil || cfg.Store == nil {
		return nil, errors.New("gateway config watch: Istio client and Store are required")
	}
	if cfg.Recheck <= 0 {
		cfg.Recheck = DefaultPeerAuthRecheck
	}
	if cfg.Changed == nil {
		cfg.Changed = func() {}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &GatewayConfigWatch{cfg: cfg, log: cfg.Logger, dirty: make(chan struct{}, 1)}, nil
}

// Run watches until ctx is done. While the cluster does not serve
// Gateways and VirtualServices (Istio's CRDs are not installed) or the
// control plane may not list them, the config is empty and the question
// is asked again every Config.Recheck.
func (w *GatewayConfigWatch) Run(ctx context.Context) {
	for {
		ok, why := w.served(ctx)
		if ctx.Err() != nil {
			return
		}
		if ok {
			w.watch(ctx)
			return
		}
		w.log.Debug("istio gateways not watched; asking again", "why", why, "recheck", w.cfg.Recheck)
		t := time.NewTimer(w.cfg.Recheck)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// served asks whether the cluster serves, and the control plane may list,
// Gateways and VirtualServices.
func (w *GatewayConfigWatch) served(ctx context.Context) (bool, string) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var list metav1.APIResourceList
	if rc := w.cfg.Istio.Discovery().RESTClient(); rc != nil {
		body, err := rc.Get().AbsPath("/apis", networkingGroupVersion).Do(ctx).Raw()
		switch {
		case err != nil:
			return false, fmt.Sprintf("discovery of %s: %v", networkingGroupVersion, err)
		case len(body) > maxDiscoveryBytes:
			return false, fmt.Sprintf("discovery of %s: %d bytes, more than %d", networkingGroupVersion, len(body), maxDiscoveryBytes)
		}
		if err := json.Unmarshal(body, &list); err != nil {
			return false, fmt.Sprintf("discovery of %s: %v", networkingGroupVersion, err)
		}
	} else {
		l, err := w.cfg.Istio.Discovery().ServerResourcesForGroupVersion(networkingGroupVersion)
		if err != nil {
			return false, fmt.Sprintf("discovery of %s: %v", networkingGroupVersion, err)
		}
		list = *l
	}
	for _, r := range []string{"gateways", "virtualservices"} {
		if !slices.ContainsFunc(list.APIResources, func(a metav1.APIResource) bool { return a.Name == r }) {
			return false, fmt.Sprintf("%s %s is not served (Istio's CRDs are not installed)", networkingGroupVersion, r)
		}
	}
	if _, err := w.cfg.Istio.NetworkingV1().Gateways(metav1.NamespaceAll).List(ctx, metav1.ListOptions{Limit: 1}); err != nil {
		if apierrors.IsForbidden(err) || apierrors.IsUnauthorized(err) {
			return false, "the control plane's account may not list gateways.networking.istio.io: grant get, list and watch"
		}
		return false, fmt.Sprintf("list gateways: %v", err)
	}
	return true, ""
}

// watch runs both informers and syncs the store on every change until
// ctx is done.
func (w *GatewayConfigWatch) watch(ctx context.Context) {
	net := w.cfg.Istio.NetworkingV1()
	gwInf := w.informer(&networkingv1.Gateway{},
		func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			return net.Gateways(metav1.NamespaceAll).List(ctx, o)
		},
		func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			return net.Gateways(metav1.NamespaceAll).Watch(ctx, o)
		})
	vsInf := w.informer(&networkingv1.VirtualService{},
		func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			return net.VirtualServices(metav1.NamespaceAll).List(ctx, o)
		},
		func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			return net.VirtualServices(metav1.NamespaceAll).Watch(ctx, o)
		})
	gws := networkinglisters.NewGatewayLister(gwInf.GetIndexer())
	vss := networkinglisters.NewVirtualServiceLister(vsInf.GetIndexer())
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() { gwInf.RunWithContext(ctx) })
	wg.Go(func() { vsInf.RunWithContext(ctx) })
	if !cache.WaitForCacheSync(ctx.Done(), gwInf.HasSynced, vsInf.HasSynced) {
		return
	}
	w.log.Info("istio gateways and virtualservices watched")
	for {
		w.sync(gws, vss)
		select {
		case <-ctx.Done():
			return
		case <-w.dirty:
		}
	}
}

// informer builds an informer of every namespace whose events mark the
// config dirty.
func (w *GatewayConfigWatch) informer(obj runtime.Object,
	list func(context.Context, metav1.ListOptions) (runtime.Object, error),
	watchFn func(context.Context, metav1.ListOptions) (watch.Interface, error),
) cache.SharedIndexInformer {
	lw := &cache.ListWatch{ListWithContextFunc: list, WatchFuncWithContext: watchFn}
	inf := cache.NewSharedIndexInformerWithOptions(cache.ToListWatcherWithWatchListSemantics(lw, w.cfg.Istio), obj,
		cache.SharedIndexInformerOptions{Indexers: cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc}})
	mark := func() {
		select {
		case w.dirty <- struct{}{}:
		default:
		}
	}
	// Handlers cannot fail on an informer that has not started.
	_, _ = inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { mark() },
		UpdateFunc: func(any, any) { mark() },
		DeleteFunc: func(any) { mark() },
	})
	return inf
}

// sync hands the store what the listers hold.
func (w *GatewayConfigWatch) sync(gws networkinglisters.GatewayLister, vss networkinglisters.VirtualServiceLister) {
	g, err := gws.List(labels.Everything())
	if err != nil {
		return // a lister of an indexer never fails
	}
	v, err := vss.List(labels.Everything())
	if err != nil {
		return
	}
	cfg, dropped := GatewayConfigOf(g, v, w.cfg.Domain)
	if dropped > 0 {
		w.log.Info("virtualservice tls routes left out", "dropped", dropped, "max", MaxGatewayRoutes)
	}
	w.cfg.Store.SetGatewayConfig(cfg)
	w.cfg.Changed()
}

// GatewayConfigOf converts Istio's Gateways and VirtualServices into
// what east-west gateways act on: every Gateway's selector and TLS
// servers, and every tls route match of a VirtualService bound to a
// Gateway (the match's gateways, else the VirtualService's; "mesh" is
// not a Gateway), with the route's first destination. More than
// MaxGatewayRoutes matches are left out; dropped counts them.
func GatewayConfigOf(gws []*networkingv1.Gateway, vss []*networkingv1.VirtualService, domain string) (cfg model.GatewayConfig, dropped int) {
	for _, g := range gws {
		ig := model.IstioGateway{Namespace: g.Namespace, Name: g.Name, Selector: g.Spec.GetSelector()}
		for _, s := range g.Spec.GetServers() {
			gs := model.GatewayServer{Port: s.GetPort().GetNumber(), Protocol: s.GetPort().GetProtocol(), Hosts: s.GetHosts()}
			if s.GetTls() != nil {
				gs.TLSMode = s.GetTls().GetMode().String()
			}
			ig.Servers = append(ig.Servers, gs)
		}
		cfg.Gateways = append(cfg.Gateways, ig)
	}
	for _, vs := range vss {
		for _, tr := range vs.Spec.GetTls() {
			routes := tr.GetRoute()
			if len(routes) == 0 || routes[0].GetDestination().GetHost() == "" {
				continue
			}
			d := routes[0].GetDestination()
			for _, m := range tr.GetMatch() {
				gwNames := m.GetGateways()
				if len(gwNames) == 0 {
					gwNames = vs.Spec.GetGateways()
				}
				bound := gatewayRefs(gwNames, vs.Namespace)
				if len(bound) == 0 {
					continue
				}
				if len(cfg.Routes) >= MaxGatewayRoutes {
					dropped++
					continue
				}
				cfg.Routes = append(cfg.Routes, model.GatewayTLSRoute{
					Namespace: vs.Namespace, Name: vs.Name, Gateways: bound,
					Port: m.GetPort(), SNIHosts: m.GetSniHosts(),
					Destination:     model.ResolveHost(d.GetHost(), vs.Namespace, domain),
					DestinationPort: d.GetPort().GetNumber(),
				})
			}
		}
	}
	return cfg, dropped
}

// gatewayRefs are a VirtualService's gateway names as NAMESPACE/NAME (a
// name alone is of the VirtualService's namespace); "mesh" is left out.
func gatewayRefs(names []string, namespace string) []string {
	var out []string
	for _, n := range names {
		switch {
		case n == "mesh" || n == "":
		case strings.Contains(n, "/"):
			out = append(out, n)
		default:
			out = append(out, namespace+"/"+n)
		}
	}
	return out
}
