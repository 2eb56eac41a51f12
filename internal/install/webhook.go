package install

import (
	"fmt"
	"net"
	"strconv"
	"strings"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/causeway-mesh/causeway/internal/inject"
	"github.com/causeway-mesh/causeway/internal/pki"
)

// The injection webhook's names and ports (Istio's).
const (
	// WebhookConfigName is the MutatingWebhookConfiguration, with
	// "-REVISION" appended for a revision.
	WebhookConfigName = "istio-sidecar-injector"
	// PortWebhook is where `causeway serve` serves the webhook
	// (--webhook-addr), and the east-west gateway's tls-webhook port.
	PortWebhook = 15017
	// PortWebhookService is the control plane Service's https-webhook
	// port, which the webhook's service reference names.
	PortWebhookService = 443
)

// webhookEnabled: the profile makes a MutatingWebhookConfiguration.
func (v Values) webhookEnabled(p Profile) bool {
	return !v.NoWebhook && (p == ProfilePrimary || p == ProfileRemote)
}

// validateWebhook checks what the webhook of profile p needs.
func (v Values) validateWebhook(p Profile) []error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if v.CABundle != "" {
		infos, err := pki.Inspect([]byte(v.CABundle))
		switch {
		case err != nil:
			bad("caBundle: %v; give the mesh root as PEM (cacerts' root-cert.pem)", err)
		case len(infos) == 0:
			bad("caBundle holds no certificate; give the mesh root as PEM (cacerts' root-cert.pem)")
		}
	}
	if v.WebhookHost != "" {
		if msgs := validation.IsDNS1123Subdomain(v.WebhookHost); len(msgs) > 0 {
			bad("webhook host %q: want a DNS name: %s", v.WebhookHost, strings.Join(msgs, "; "))
		}
	}
	if p == ProfileEastWestGateway && v.Gateway.ExposeControlPlane && v.Gateway.Port == PortWebhook {
		bad("gateway.port %d is the webhook's port, which exposeControlPlane adds: choose another", v.Gateway.Port)
	}
	if p != ProfileRemote || !v.webhookEnabled(p) {
		return errs
	}
	if v.ClusterID == "" {
		bad("the cluster id is required for the remote cluster's injection webhook (--cluster-id): its URL names the cluster, /inject/cluster/CLUSTER/net/NETWORK; or --no-webhook to install without injection")
	}
	if v.Network == "" {
		bad("the network is required for the remote cluster's injection webhook (--network): its URL names the network, /inject/cluster/CLUSTER/net/NETWORK; or --no-webhook to install without injection")
	}
	if v.WebhookHost == "" && v.RemotePilotAddress != "" {
		if _, isIP, err := parsePilotAddress(v.RemotePilotAddress); err == nil && isIP {
			bad("the remote cluster's injection webhook needs a DNS name of the primary's east-west gateway (--webhook-host NAME): the API server verifies https://HOST:%d/inject/... against the control plane's serving certificate, which names DNS names only, so the IP %s cannot be verified. Make NAME resolve to the gateway from this cluster's API server and give the primary --custom-host NAME; or --no-webhook to install without injection", PortWebhook, v.RemotePilotAddress)
		}
	}
	return errs
}

// webhookConfiguration is the injection webhook of the profile: for the
// primary a reference to the control plane's Service (port 443, which
// targets 15017), path /inject; for a remote cluster the URL of the
// primary's east-west gateway on 15017, path
// /inject/cluster/CLUSTER/net/NETWORK, as Istio's remote profile writes.
// Selectors are Istio's, for the revision (inject.WebhookConfiguration).
func webhookConfiguration(p Profile, v Values) Object {
	client := admissionregistrationv1.WebhookClientConfig{}
	if v.CABundle != "" {
		client.CABundle = []byte(v.CABundle)
	}
	switch p {
	case ProfileRemote:
		host := v.WebhookHost
		if host == "" {
			host, _, _ = parsePilotAddress(v.RemotePilotAddress) // validated: a DNS name
		}
		u := fmt.Sprintf("https://%s%scluster/%s/net/%s", net.JoinHostPort(host, strconv.Itoa(PortWebhook)), inject.PathPrefix, v.ClusterID, v.Network)
		client.URL = &u
	default:
		client.Service = &admissionregistrationv1.ServiceReference{
			Name:      v.revisioned(ControlPlaneName),
			Namespace: v.Namespace,
			Path:      new(inject.Path),
			Port:      new(int32(PortWebhookService)),
		}
	}
	wc := inject.WebhookConfiguration(v.revisioned(WebhookConfigName), v.Revision, client)
	wc.Labels["app"] = "sidecar-injector"
	return wc
}
