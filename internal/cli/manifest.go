package cli

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	corev1 "k8s.io/api/core/v1"

	"github.com/causeway-mesh/causeway/internal/files"
	"github.com/causeway-mesh/causeway/internal/inject"
	"github.com/causeway-mesh/causeway/internal/install"
	"github.com/causeway-mesh/causeway/internal/version"
)

// errManifestsDiffer is what `causeway manifest diff` returns when the
// manifests differ, so that the binary exits with status 1.
var errManifestsDiffer = errors.New("manifests differ")

func newManifestCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "manifest",
		Short: "Generate the Kubernetes objects that install Causeway, and compare manifests",
		Args:  cobra.NoArgs,
	}
	cmd.AddCommand(newManifestGenerateCommand(), newManifestDiffCommand())
	return cmd
}

// manifestFlags are the flags of `causeway manifest generate`.
type manifestFlags struct {
	profile     string
	valuesFile  string
	only        []string
	serviceType string
	caBundle    string
	values      install.Values
}

// manifestGenerateLong is the help of "manifest generate".
const manifestGenerateLong = `Print, as plain Kubernetes YAML, what installs one part of a multi-cluster mesh:

  primary           the control plane: the system namespace labeled with the
                    network, a ServiceAccount with least-privilege RBAC, the
                    Deployment running "causeway serve", the Services istiod
                    (and istiod-REVISION) on 15010, 15012, 443 (the webhook,
                    to 15017) and 15014, a PodDisruptionBudget, and the
                    MutatingWebhookConfiguration
                    istio-sidecar-injector(-REVISION) that sends pods to the
                    control plane's Service (https-webhook 443 -> 15017,
                    path /inject) with Istio's namespace and object selectors.
  remote            a cluster whose proxies use a primary's control plane: no
                    control plane, only the Service istiod-remote (headless,
                    port 15012) and the Endpoints that point it at the
                    primary's east-west gateway (--remote-pilot-address), and
                    the account the primary's remote secret uses, and the
                    MutatingWebhookConfiguration whose URL is the primary's
                    gateway, https://HOST:15017/inject/cluster/CLUSTER/net/NETWORK
                    (HOST: --webhook-host, or the pilot address if a DNS name).
  eastwest-gateway  a network's east-west gateway: the Deployment running
                    "causeway gateway" and its Service (LoadBalancer, or
                    NodePort with --gateway-service-type NodePort) labeled
                    topology.istio.io/network=NETWORK, port tls 15443, and
                    with --expose-control-plane tls-istiod 15012 (remote
                    proxies) and tls-webhook 15017 (remote clusters'
                    webhooks), both passed through to the control plane.
                    With --gateway-image istio it runs Istio's proxyv2 in
                    router mode instead (ROUTER_MODE sni-dnat, configured by
                    the control plane over 15012).

The webhook's caBundle is the mesh root, read from --ca-bundle (the
root-cert.pem of the cacerts you plug in). Without it caBundle is left empty
and the API server cannot verify the webhook until it is set: "causeway check"
says so and how to fix it. See docs/install.md.

The output is deterministic (the same input gives the same bytes), so it can
be kept in git and compared with "causeway manifest diff". With a revision the
control plane is named istiod-REVISION and its serving certificate covers
istiod-REVISION.NAMESPACE.svc, the name revisioned proxies dial (the home lab's
ISTIOD_CUSTOM_HOST trouble).

Values come from the defaults, then the file of -f, then the flags. The file's
keys (unknown keys are an error):

  clusterID, network, meshID, namespace, revision, trustDomain, image,
  imagePullPolicy, customHosts (list), remotePilotAddress, caBundle (PEM),
  webhookHost, noWebhook, proxyImage,
  controlPlane: {replicas (default 2), resources, nodeSelector},
  gateway: {replicas, resources, nodeSelector, serviceType, port, nodePort,
            exposeControlPlane, xdsAddress, serviceAnnotations, imageKind}

resources replace the defaults as a whole (requests cpu 100m, memory 256Mi,
limit memory 1Gi for the control plane; 100m, 128Mi, 512Mi for the gateway).`

func newManifestGenerateCommand() *cobra.Command {
	var f manifestFlags
	cmd := &cobra.Command{
		Use:   "generate --profile primary|remote|eastwest-gateway",
		Short: "Print the Kubernetes objects of a profile as YAML, for kubectl apply",
		Long:  manifestGenerateLong,
		Example: `  # cluster1: primary on network1, and its east-west gateway behind a load balancer.
  causeway manifest generate --profile primary --cluster-id cluster1 --network network1 --mesh-id mesh1 \
    --ca-bundle root-cert.pem --custom-host eastwest.cluster1.example | kubectl apply -f -
  # Istio's proxyv2 as the gateway (either image passes 15012 and 15017 through).
  causeway manifest generate --profile eastwest-gateway --cluster-id cluster1 --network network1 --mesh-id mesh1 \
    --expose-control-plane --gateway-image istio | kubectl apply -f -

  # cluster2: remote on network2, pointed at cluster1's gateway, and a NodePort gateway.
  causeway manifest generate --profile remote --cluster-id cluster2 --network network2 --mesh-id mesh1 \
    --remote-pilot-address 192.0.2.10 --webhook-host eastwest.cluster1.example --ca-bundle root-cert.pem \
    | kubectl --kubeconfig cluster2 apply -f -
  causeway manifest generate --profile eastwest-gateway --cluster-id cluster2 --network network2 --mesh-id mesh1 \
    --remote-pilot-address 192.0.2.10 --gateway-service-type NodePort | kubectl --kubeconfig cluster2 apply -f -

  # Only the namespace (to plug in cacerts before the control plane starts).
  causeway manifest generate --profile primary --cluster-id cluster1 --network network1 --only Namespace`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			out, err := f.generate(cmd.Flags())
			if err != nil {
				return err
			}
			_, err = cmd.OutOrStdout().Write(out)
			return err
		},
	}
	f.register(cmd.Flags())
	return cmd
}

// register adds the flags of "manifest generate" to fl.
func (f *manifestFlags) register(fl *pflag.FlagSet) {
	v := &f.values
	fl.StringVar(&f.profile, "profile", "", "what to install: primary, remote or eastwest-gateway (required)")
	fl.StringVarP(&f.valuesFile, "values", "f", "", "values file (YAML); flags override it")
	fl.StringSliceVar(&f.only, "only", nil, "print only objects of these kinds (e.g. Namespace,Service)")
	fl.StringVar(&v.ClusterID, "cluster-id", "", "id of this cluster (the remote secret's data key, causeway serve --cluster-id)")
	fl.StringVar(&v.Network, "network", "", "the cluster's network: the topology.istio.io/network label of the system namespace and gateway")
	fl.StringVar(&v.MeshID, "mesh-id", "", "mesh id, a label of the system namespace ("+install.LabelMeshID+"); the same in every cluster")
	fl.StringVar(&v.Namespace, "namespace", install.DefaultNamespace, "the system namespace")
	fl.StringVar(&v.Revision, "revision", "", "control plane revision: names istiod-REVISION, label istio.io/rev")
	fl.StringVar(&v.TrustDomain, "trust-domain", install.DefaultTrustDomain, "SPIFFE trust domain")
	fl.StringVar(&v.Image, "image", "", "Causeway image (default "+install.ImageFor(version.Version)+")")
	fl.StringArrayVar(&v.CustomHosts, "custom-host", nil, "extra DNS name of the control plane's serving certificate (repeatable)")
	fl.StringVar(&v.RemotePilotAddress, "remote-pilot-address", "", "remote: IP or DNS name of the primary's east-west gateway (port 15012)")
	fl.StringVar(&f.serviceType, "gateway-service-type", string(corev1.ServiceTypeLoadBalancer), "eastwest-gateway: LoadBalancer, or NodePort where no load-balancer controller runs")
	fl.BoolVar(&v.Gateway.ExposeControlPlane, "expose-control-plane", false, "eastwest-gateway: add ports tls-istiod 15012 for remote clusters' proxies and tls-webhook 15017 for their API servers' injection webhook calls, passed through to the control plane")
	fl.StringVar(&v.Gateway.XDSAddress, "xds-address", "", "eastwest-gateway: where the gateway gets its configuration (default: the control plane's Service, port 15010 for Causeway's gateway, 15012 for Istio's)")
	fl.StringVar(&f.caBundle, "ca-bundle", "", "primary, remote: PEM file of the mesh root (cacerts' root-cert.pem), written as the injection webhook's caBundle; empty leaves it unset (causeway check tells how to set it)")
	fl.StringVar(&v.WebhookHost, "webhook-host", "", "remote: DNS name by which this cluster's API server reaches the primary's east-west gateway on 15017 (the webhook URL's host; the primary's serving certificate must name it: --custom-host); default the --remote-pilot-address when it is a DNS name")
	fl.BoolVar(&v.NoWebhook, "no-webhook", false, "primary, remote: leave out the MutatingWebhookConfiguration (no sidecar injection by Causeway in this cluster)")
	fl.StringVar(&v.Gateway.ImageKind, "gateway-image", install.GatewayImageCauseway, "eastwest-gateway: causeway (runs \"causeway gateway\") or istio (runs Istio's proxyv2 in router mode, configured by the control plane; see --proxy-image)")
	fl.StringVar(&v.ProxyImage, "proxy-image", inject.DefaultProxyImage, "eastwest-gateway with --gateway-image istio: Istio's proxyv2 image, HUB/proxyv2:TAG of the Istio version the control plane supports")
	fl.Int32Var(&v.ControlPlane.Replicas, "replicas", install.DefaultControlPlaneReplicas, "primary: replicas of the control plane (controlPlane.replicas); every replica serves, one elected leader writes (docs/replicas.md)")
}

// generate merges the values (defaults, file, changed flags) and renders
// the profile.
func (f *manifestFlags) generate(fl *pflag.FlagSet) ([]byte, error) {
	if f.profile == "" {
		return nil, fmt.Errorf("--profile is required: primary, remote or eastwest-gateway")
	}
	profile, err := install.ParseProfile(f.profile)
	if err != nil {
		return nil, fmt.Errorf("--profile: %w", err)
	}
	v := install.Values{}
	if f.valuesFile != "" {
		data, err := files.Read(context.Background(), f.valuesFile, files.Values)
		if err != nil {
			return nil, fmt.Errorf("values file: %w", err)
		}
		if v, err = install.ParseValues(data); err != nil {
			return nil, fmt.Errorf("values file %s: %w", f.valuesFile, err)
		}
	}
	fv := f.values
	fv.Gateway.ServiceType = corev1.ServiceType(f.serviceType)
	overrides := map[string]func(){
		"cluster-id":           func() { v.ClusterID = fv.ClusterID },
		"network":              func() { v.Network = fv.Network },
		"mesh-id":              func() { v.MeshID = fv.MeshID },
		"namespace":            func() { v.Namespace = fv.Namespace },
		"revision":             func() { v.Revision = fv.Revision },
		"trust-domain":         func() { v.TrustDomain = fv.TrustDomain },
		"image":                func() { v.Image = fv.Image },
		"custom-host":          func() { v.CustomHosts = fv.CustomHosts },
		"remote-pilot-address": func() { v.RemotePilotAddress = fv.RemotePilotAddress },
		"gateway-service-type": func() { v.Gateway.ServiceType = fv.Gateway.ServiceType },
		"expose-control-plane": func() { v.Gateway.ExposeControlPlane = fv.Gateway.ExposeControlPlane },
		"xds-address":          func() { v.Gateway.XDSAddress = fv.Gateway.XDSAddress },
		"webhook-host":         func() { v.WebhookHost = fv.WebhookHost },
		"no-webhook":           func() { v.NoWebhook = fv.NoWebhook },
		"gateway-image":        func() { v.Gateway.ImageKind = fv.Gateway.ImageKind },
		"proxy-image":          func() { v.ProxyImage = fv.ProxyImage },
		"replicas":             func() { v.ControlPlane.Replicas = fv.ControlPlane.Replicas },
	}
	fl.Visit(func(flag *pflag.Flag) {
		if set, ok := overrides[flag.Name]; ok {
			set()
		}
	})
	if v.Image == "" {
		v.Image = install.ImageFor(version.Version)
	}
	if f.caBundle != "" {
		data, err := files.Read(context.Background(), f.caBundle, files.PEM)
		if err != nil {
			return nil, fmt.Errorf("--ca-bundle: %w", err)
		}
		v.CABundle = string(data)
	}
	objs, err := install.Generate(profile, v)
	if err != nil {
		return nil, err
	}
	if objs, err = onlyKinds(objs, f.only, profile); err != nil {
		return nil, err
	}
	return install.Render(objs, "Generated by causeway manifest generate"+flagLine(fl))
}

// flagLine is the flags given, for the header: how to make the same
// output again.
func flagLine(fl *pflag.FlagSet) string {
	var b strings.Builder
	fl.Visit(func(flag *pflag.Flag) {
		vals := []string{flag.Value.String()}
		if sv, ok := flag.Value.(pflag.SliceValue); ok {
			vals = sv.GetSlice()
		}
		if flag.Name == "only" {
			vals = []string{strings.Join(vals, ",")}
		}
		for _, val := range vals {
			fmt.Fprintf(&b, " --%s=%s", flag.Name, val)
		}
	})
	return b.String()
}

// onlyKinds keeps the objects of the named kinds (case-insensitive).
func onlyKinds(objs []install.Object, kinds []string, p install.Profile) ([]install.Object, error) {
	if len(kinds) == 0 {
		return objs, nil
	}
	var have []string
	for _, o := range objs {
		if k := o.GetObjectKind().GroupVersionKind().Kind; !slices.Contains(have, k) {
			have = append(have, k)
		}
	}
	for _, k := range kinds {
		if !slices.ContainsFunc(have, func(h string) bool { return strings.EqualFold(h, k) }) {
			return nil, fmt.Errorf("--only %s: profile %s makes no object of that kind; it makes %s", k, p, strings.Join(have, ", "))
		}
	}
	return slices.DeleteFunc(objs, func(o install.Object) bool {
		kind := o.GetObjectKind().GroupVersionKind().Kind
		return !slices.ContainsFunc(kinds, func(k string) bool { return strings.EqualFold(k, kind) })
	}), nil
}
