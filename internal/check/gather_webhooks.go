package check

import (
	"cmp"
	"context"
	"slices"
	"strings"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/causeway-mesh/causeway/internal/install"
)

// maxDeployments bounds how many Deployments (of all namespaces) are
// read: one page.
const maxDeployments = 2000

// injectionState is what the injection pitfalls are judged on.
type injectionState struct {
	// namespaces of the cluster (all of them).
	namespaces []corev1.Namespace
	// webhooks are the MutatingWebhookConfigurations.
	webhooks []admissionregistrationv1.MutatingWebhookConfiguration
	// rootConfigMap is istio-ca-root-cert of the system namespace, nil
	// when it does not exist.
	rootConfigMap *corev1.ConfigMap
	// disabledDeployments are the Deployments of the namespaces labeled
	// istio-injection=disabled.
	disabledDeployments []appsv1.Deployment
	// revisionDeployments are the other Deployments whose pods are
	// labeled istio.io/rev.
	revisionDeployments []appsv1.Deployment
	// err: something above could not be read.
	err error
}

// gatherInjection reads the namespaces, the webhook configurations, the
// mesh root's ConfigMap and the Deployments.
func gatherInjection(ctx context.Context, cs kubernetes.Interface, systemNS string) injectionState {
	var st injectionState
	nss, err := cs.CoreV1().Namespaces().List(ctx, metav1.ListOptions{})
	if err != nil {
		st.err = err
		return st
	}
	st.namespaces = nss.Items
	whs, err := cs.AdmissionregistrationV1().MutatingWebhookConfigurations().List(ctx, metav1.ListOptions{})
	if err != nil {
		st.err = err
		return st
	}
	st.webhooks = whs.Items
	if st.rootConfigMap, err = getOptional(cs.CoreV1().ConfigMaps(systemNS).Get(ctx, install.RootCertConfigMap, metav1.GetOptions{})); err != nil {
		st.err = err
		return st
	}
	// One page of every namespace's Deployments: the pitfalls concern
	// pod templates (a gateway that needs injection, a revision label).
	deps, err := cs.AppsV1().Deployments(metav1.NamespaceAll).List(ctx, metav1.ListOptions{Limit: maxDeployments})
	if err != nil {
		st.err = err
		return st
	}
	disabled := map[string]bool{}
	for i := range st.namespaces {
		if st.namespaces[i].Labels[labelInjection] == "disabled" {
			disabled[st.namespaces[i].Name] = true
		}
	}
	for i := range deps.Items {
		d := &deps.Items[i]
		switch {
		case disabled[d.Namespace]:
			st.disabledDeployments = append(st.disabledDeployments, *d)
		case d.Spec.Template.Labels[install.LabelRevision] != "":
			st.revisionDeployments = append(st.revisionDeployments, *d)
		}
	}
	byName := func(a, b appsv1.Deployment) int {
		return cmp.Or(strings.Compare(a.Namespace, b.Namespace), strings.Compare(a.Name, b.Name))
	}
	slices.SortFunc(st.disabledDeployments, byName)
	slices.SortFunc(st.revisionDeployments, byName)
	return st
}
