// Package pki is Causeway's mesh certificate authority, pure crypto with no
// Kubernetes: it makes the root and the per-cluster intermediate CAs of
// Istio's plug-in layout (the `cacerts` Secret: ca-cert.pem, ca-key.pem,
// root-cert.pem, cert-chain.pem), loads and checks such a bundle as a CA
// that signs workload certificates (SPIFFE URI SANs) and the control
// plane's serving certificates, and inspects and verifies every certificate
// of a PEM chain. Clusters whose intermediates share one root trust each
// other's workloads.
package pki
