// Package install renders the Kubernetes objects that install Causeway on a
// cluster and compares two such manifests. Generate builds typed k8s.io/api
// objects for one profile (the control plane of a primary cluster, the
// remote cluster's pointer to a primary's control plane, or a network's
// east-west gateway) from Values, the small documented schema that
// `causeway manifest generate -f values.yaml` reads; Render serializes them
// as deterministic YAML; Diff compares two manifests object by object, as
// `istioctl manifest diff` does. All of that is pure; only Apply talks to
// an API server (server-side apply of a rendered manifest, optionally as a
// dry run), for tools and tests that apply what they generate.
package install
