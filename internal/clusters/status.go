package clusters

import (
	"time"

	"github.com/causeway-mesh/causeway/internal/kube"
	"github.com/causeway-mesh/causeway/internal/model"
)

// State is where a cluster stands, as /debug/clusters and `causeway status`
// show it.
type State string

// The states of a cluster.
const (
	// StateSyncing: the initial list is not complete yet and the API server
	// answers (or has not been probed yet).
	StateSyncing State = "syncing"
	// StateUnreachable: never synced, and the API server does not answer.
	StateUnreachable State = "unreachable"
	// StateLive: synced, and the API server answers.
	StateLive State = "live"
	// StateStale: synced once, the API server does not answer now; its
	// last-known objects are kept in the model.
	StateStale State = "stale"
	// StateDropped: stale longer than the drop-after policy allows; its
	// objects were removed from the model until it answers again.
	StateDropped State = "dropped"
	// StateError: a remote secret entry that could not be used (a bad
	// kubeconfig, a credential that is not allowed, a cluster id taken by
	// another entry). Nothing of it is watched.
	StateError State = "error"
	// StateStatic: a cluster of a static server (`causeway serve
	// --manifests`): its objects come from files and never change.
	StateStatic State = "static"
)

// States lists every State, in the order tables show them.
func States() []State {
	return []State{StateLive, StateSyncing, StateStale, StateDropped, StateUnreachable, StateError, StateStatic}
}

// CredentialsFailing is [Status].Credentials of a cluster whose changed
// kubeconfig was refused.
const CredentialsFailing = "failing"

// Status is what /debug/clusters says of one cluster (or of one remote
// secret entry that could not be used).
type Status struct {
	ID model.ClusterID `json:"id"`
	// Source is where the cluster comes from: "config" for the config
	// cluster, "secret NS/NAME" for a remote secret entry.
	Source string `json:"source"`
	// Server is the API server URL.
	Server string `json:"server,omitempty"`
	State  State  `json:"state"`
	// Network is the topology.istio.io/network label of the cluster's system
	// namespace: its default network.
	Network model.NetworkID `json:"network"`
	// Synced: the initial list of every watched kind reached the model.
	Synced bool `json:"synced"`
	// Live: the last probe of the API server succeeded.
	Live bool `json:"live"`
	// SyncedAt is when the initial list completed, SyncSeconds how long it
	// took from the start of the watch.
	SyncedAt    *time.Time `json:"syncedAt,omitempty"`
	SyncSeconds float64    `json:"syncSeconds,omitempty"`
	// LastSeen is the last time the API server answered.
	LastSeen *time.Time `json:"lastSeen,omitempty"`
	// StaleSeconds is how old the cluster's data may be when it is not live:
	// the time since LastSeen (since the watch started if never seen).
	StaleSeconds float64 `json:"staleSeconds,omitempty"`
	// Dropped: the stale cluster's objects were removed from the model
	// (--stale-cluster-policy=drop-after=...).
	Dropped bool `json:"dropped,omitempty"`
	// Error is the last error of the cluster: a failed probe or watch, or
	// why its secret entry (or the latest change to it) was refused.
	Error string `json:"error,omitempty"`
	// Credentials is CredentialsFailing when the latest change of the
	// cluster's remote secret entry was refused: it failed sanitizing, or
	// its new client did not connect, authenticate and sync within the
	// swap timeout. The previous kubeconfig is still used; Error says why.
	Credentials string `json:"credentials,omitempty"`
	// Pending says a changed secret's new kubeconfig is syncing; the
	// cluster is still served from the previous one until it is done.
	Pending string `json:"pending,omitempty"`
	// PeerAuthentication says whether the cluster's PeerAuthentications
	// are read: watching, checking, absent (Istio's CRDs are not
	// installed) or forbidden (the account may not list them);
	// PeerAuthenticationWhy says what that means and what to do.
	PeerAuthentication    string `json:"peerAuthentication,omitempty"`
	PeerAuthenticationWhy string `json:"peerAuthenticationWhy,omitempty"`
	// Objects are the numbers of watched objects by kind.
	Objects *kube.Counts `json:"objects,omitempty"`
	// Rejected lists (at most 20) objects the model refused, with why;
	// RejectedCount is how many there are in all.
	Rejected      []string `json:"rejected,omitempty"`
	RejectedCount int      `json:"rejectedCount,omitempty"`
	// Endpoints are the cluster's ready endpoint addresses by network, from
	// the latest model snapshot (filled in by the debug server).
	Endpoints map[model.NetworkID]int `json:"endpoints,omitempty"`
}
