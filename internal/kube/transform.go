package kube

import (
	"maps"
	"reflect"
	"slices"

	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/causeway-mesh/causeway/internal/model"
)

// strip is the informers' transform: it keeps of each object only what
// internal/kubeconv reads (and what the update filter compares), so that the
// informer caches of a large cluster stay small. It runs once per object
// received, before the object enters the cache, and changes it in place as
// client-go allows; a Pod it replaces with a *slimPod.
func strip(obj any) (any, error) {
	switch o := obj.(type) {
	case *corev1.Pod:
		p := &slimPod{ServiceAccountName: o.Spec.ServiceAccountName, NodeName: o.Spec.NodeName,
			PodIP: o.Status.PodIP, PodIPs: o.Status.PodIPs}
		// All labels: the network and tlsMode labels, and whatever a
		// PeerAuthentication's workload selector matches.
		stripMeta(&o.ObjectMeta, nil, nil)
		p.ObjectMeta = o.ObjectMeta
		return p, nil
	case *corev1.Node:
		// All labels: locality reads three of them and a gateway's node
		// selector may match any. The kubelet version decides native
		// sidecars (--native-sidecars=auto).
		stripMeta(&o.ObjectMeta, nil, nil)
		o.Spec = corev1.NodeSpec{}
		o.Status = corev1.NodeStatus{Addresses: o.Status.Addresses,
			NodeInfo: corev1.NodeSystemInfo{KubeletVersion: o.Status.NodeInfo.KubeletVersion}}
	case *corev1.Service:
		stripMeta(&o.ObjectMeta, []string{model.LabelNetwork, model.LabelGatewayPort}, []string{model.AnnotationNodeSelect})
		o.Spec.Selector = nil
		o.Spec.SessionAffinityConfig = nil
		o.Status.Conditions = nil
	case *discoveryv1.EndpointSlice:
		stripMeta(&o.ObjectMeta, []string{discoveryv1.LabelServiceName}, nil)
		for i := range o.Endpoints {
			e := &o.Endpoints[i]
			e.Hostname = nil
			e.Hints = nil
			e.DeprecatedTopology = nil
			if r := e.TargetRef; r != nil {
				e.TargetRef = &corev1.ObjectReference{Kind: r.Kind, Namespace: r.Namespace, Name: r.Name}
			}
		}
	case *securityv1.PeerAuthentication:
		stripMeta(&o.ObjectMeta, []string{}, nil) // kubeconv reads the spec and creation time
	case *corev1.Namespace:
		stripMeta(&o.ObjectMeta, []string{model.LabelNetwork}, nil)
		o.Spec = corev1.NamespaceSpec{}
		o.Status = corev1.NamespaceStatus{}
	}
	return obj, nil
}

// stripMeta drops managed fields, owner references, finalizers and every
// annotation and label not named. keepLabels nil keeps all labels.
func stripMeta(m *metav1.ObjectMeta, keepLabels, keepAnnotations []string) {
	m.ManagedFields = nil
	m.OwnerReferences = nil
	m.Finalizers = nil
	m.GenerateName = ""
	m.Annotations = only(m.Annotations, keepAnnotations)
	if keepLabels != nil {
		m.Labels = only(m.Labels, keepLabels)
	}
}

// only returns the entries of in whose keys are listed, or nil when none is;
// in itself when it holds nothing else (no copy).
func only(in map[string]string, keys []string) map[string]string {
	n := 0
	for _, k := range keys {
		if _, ok := in[k]; ok {
			n++
		}
	}
	switch {
	case n == 0:
		return nil
	case n == len(in):
		return in
	}
	out := make(map[string]string, n)
	for _, k := range keys {
		if v, ok := in[k]; ok {
			out[k] = v
		}
	}
	return out
}

// changed reports whether an update of a (stripped) object can change what
// the model holds. Resyncs (same resourceVersion) never do; neither do the
// many status updates of Pods and Nodes that touch only what strip dropped
// (conditions, heartbeats, images).
func changed(oldObj, newObj any) bool {
	om, ok1 := oldObj.(metav1.Object)
	nm, ok2 := newObj.(metav1.Object)
	if !ok1 || !ok2 {
		return true
	}
	if rv := nm.GetResourceVersion(); rv != "" && rv == om.GetResourceVersion() {
		return false
	}
	switch n := newObj.(type) {
	case *slimPod:
		o, ok := oldObj.(*slimPod)
		return !ok || !maps.Equal(o.Labels, n.Labels) ||
			o.ServiceAccountName != n.ServiceAccountName || o.NodeName != n.NodeName ||
			o.PodIP != n.PodIP || !slices.Equal(o.PodIPs, n.PodIPs)
	case *corev1.Node:
		o, ok := oldObj.(*corev1.Node)
		return !ok || !maps.Equal(o.Labels, n.Labels) || !slices.Equal(o.Status.Addresses, n.Status.Addresses) ||
			o.Status.NodeInfo.KubeletVersion != n.Status.NodeInfo.KubeletVersion
	case *corev1.Namespace:
		o, ok := oldObj.(*corev1.Namespace)
		return !ok || !maps.Equal(o.Labels, n.Labels)
	case *corev1.Service:
		o, ok := oldObj.(*corev1.Service)
		return !ok || !maps.Equal(o.Labels, n.Labels) || !maps.Equal(o.Annotations, n.Annotations) ||
			!reflect.DeepEqual(o.Spec, n.Spec) || !reflect.DeepEqual(o.Status.LoadBalancer, n.Status.LoadBalancer)
	}
	return true
}

// slimPod is what the Pod informer keeps of a Pod: its metadata (stripped,
// labels kept) and the four values of its spec and status kubeconv.Pod
// reads. A *corev1.Pod is 1.25 KB even emptied, its spec and status being
// inline structs: 25 MB for the 20,000 Pods of a mesh of 2,000 services. A
// slimPod is about a quarter of that. The labels are kept whole: besides
// topology.istio.io/network and security.istio.io/tlsMode, a
// PeerAuthentication's workload selector may match any of them.
type slimPod struct {
	metav1.ObjectMeta
	ServiceAccountName string
	NodeName           string
	PodIP              string
	PodIPs             []corev1.PodIP
}

var _ runtime.Object = (*slimPod)(nil)

// GetObjectKind is runtime.Object's: a slimPod has no type metadata.
func (p *slimPod) GetObjectKind() schema.ObjectKind { return schema.EmptyObjectKind }

// DeepCopyObject is runtime.Object's.
func (p *slimPod) DeepCopyObject() runtime.Object {
	out := &slimPod{ServiceAccountName: p.ServiceAccountName,
		NodeName: p.NodeName, PodIP: p.PodIP, PodIPs: slices.Clone(p.PodIPs)}
	p.DeepCopyInto(&out.ObjectMeta)
	return out
}

// pod returns the Pod of the kept values, for kubeconv.Pod.
func (p *slimPod) pod() *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: p.ObjectMeta,
		Spec:       corev1.PodSpec{ServiceAccountName: p.ServiceAccountName, NodeName: p.NodeName},
		Status:     corev1.PodStatus{PodIP: p.PodIP, PodIPs: p.PodIPs},
	}
}
