package clusters

import (
	"errors"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"net/url"
	"slices"
	"strings"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/yaml"
)

// A remote secret's kubeconfig is written by whoever may write Secrets in
// the system namespace, and read by the control plane and by operators'
// tools (serve, check, remote-secret). SanitizeKubeconfig is the one place
// that decides what such a kubeconfig may contain.
//
// The policy:
//   - Never allowed: exec credential plugins and auth-provider plugins (they
//     run code or reach identity providers on the reader's behalf), and
//     paths to files (tokenFile, client-certificate, client-key,
//     certificate-authority): the reader's files are not the author's.
//   - Refused unless an operator allows them (KubeconfigOption):
//     insecure-skip-tls-verify, proxy-url, impersonation, basic auth (also
//     as user:password@ in the server URL), and a server whose host is a
//     link-local address (169.254.0.0/16, fe80::/10) or another well-known
//     cloud metadata address or name.
//   - Every cluster, user and context entry is checked, not only the current
//     context's, and rebuilt from the allowed fields only: unknown fields and
//     extensions are dropped.

// KubeconfigOption names an option of a remote kubeconfig that is refused
// unless the operator allows it.
type KubeconfigOption string

// The options an operator may allow (--allow-kubeconfig-option).
const (
	// OptionInsecureSkipTLSVerify allows insecure-skip-tls-verify: the
	// server's certificate is not verified, so anyone on the path can read
	// the credential and answer in the cluster's name.
	OptionInsecureSkipTLSVerify KubeconfigOption = "insecure-skip-tls-verify"
	// OptionProxyURL allows proxy-url: requests (and the credential) go
	// through the proxy the author names.
	OptionProxyURL KubeconfigOption = "proxy-url"
	// OptionImpersonate allows as, as-uid, as-groups and as-user-extra.
	OptionImpersonate KubeconfigOption = "impersonate"
	// OptionBasicAuth allows username and password.
	OptionBasicAuth KubeconfigOption = "basic-auth"
	// OptionLinkLocalServer allows a server URL whose host is a link-local
	// address (169.254.0.0/16, fe80::/10), where cloud metadata services
	// listen, or another well-known metadata address or name
	// (metadata.google.internal, fd00:ec2::254, 100.100.100.200).
	OptionLinkLocalServer KubeconfigOption = "link-local-server"
)

// KubeconfigOptions lists every [KubeconfigOption].
func KubeconfigOptions() []KubeconfigOption {
	return []KubeconfigOption{OptionInsecureSkipTLSVerify, OptionProxyURL, OptionImpersonate, OptionBasicAuth, OptionLinkLocalServer}
}

// KubeconfigPolicy says which refused-by-default options a remote
// kubeconfig may use. The zero value allows none of them.
type KubeconfigPolicy struct {
	allowed map[KubeconfigOption]bool
}

// ParseKubeconfigPolicy parses the values of --allow-kubeconfig-option:
// names of [KubeconfigOptions], each value possibly comma-separated.
func ParseKubeconfigPolicy(values []string) (KubeconfigPolicy, error) {
	p := KubeconfigPolicy{allowed: map[KubeconfigOption]bool{}}
	for _, v := range values {
		for o := range strings.SplitSeq(v, ",") {
			o = strings.TrimSpace(o)
			if o == "" {
				continue
			}
			if !slices.Contains(KubeconfigOptions(), KubeconfigOption(o)) {
				return KubeconfigPolicy{}, fmt.Errorf("kubeconfig option %q: want one of %s", o, optionList())
			}
			p.allowed[KubeconfigOption(o)] = true
		}
	}
	return p, nil
}

// Allows reports whether p allows o.
func (p KubeconfigPolicy) Allows(o KubeconfigOption) bool { return p.allowed[o] }

// String lists the allowed options, comma-separated, as
// --allow-kubeconfig-option takes them.
func (p KubeconfigPolicy) String() string {
	var out []string
	for _, o := range KubeconfigOptions() {
		if p.allowed[o] {
			out = append(out, string(o))
		}
	}
	return strings.Join(out, ",")
}

func optionList() string {
	names := make([]string, 0, len(KubeconfigOptions()))
	for _, o := range KubeconfigOptions() {
		names = append(names, string(o))
	}
	return strings.Join(names, ", ")
}

// AllowOptionFlag is the flag that allows a refused option, for errors.
const AllowOptionFlag = "--allow-kubeconfig-option"

// MaxKubeconfigBytes bounds a remote kubeconfig (a Secret holds at most
// 1 MiB in all).
const MaxKubeconfigBytes = 1 << 20

// ErrKubeconfigRefused marks a kubeconfig that parses but uses something
// the policy refuses.
var ErrKubeconfigRefused = errors.New("refused")

// refused builds an error that says what is refused and how to fix it.
func refused(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrKubeconfigRefused}, args...)...)
}

// needsOption builds the error of an option the policy does not allow.
func needsOption(what string, o KubeconfigOption, fix string) error {
	return refused("%s, which remote kubeconfigs may not use by default: %s, or let the operator allow it with %s=%s", what, fix, AllowOptionFlag, o)
}

// SanitizeKubeconfig parses a remote secret's kubeconfig, checks every
// entry against the policy (see the package's policy above and p), and
// returns the client configuration of its current context, built only from
// the allowed fields. It never reads a file, runs a command or reaches the
// network. Errors say what was refused and what to do.
func SanitizeKubeconfig(data []byte, p KubeconfigPolicy) (*rest.Config, error) {
	clean, name, err := sanitize(data, p)
	if err != nil {
		return nil, err
	}
	rc, err := clientcmd.NewNonInteractiveClientConfig(*clean, name, &clientcmd.ConfigOverrides{}, nil).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("context %q: %w", name, err)
	}
	if err := checkRESTConfig(rc, p); err != nil {
		return nil, err
	}
	return rc, nil
}

// sanitize returns the rebuilt kubeconfig and its current context.
func sanitize(data []byte, p KubeconfigPolicy) (*clientcmdapi.Config, string, error) {
	switch {
	case len(data) == 0:
		return nil, "", errors.New("it is empty: put the cluster's kubeconfig under the data key")
	case len(data) > MaxKubeconfigBytes:
		return nil, "", fmt.Errorf("it is %d bytes, more than the %d a kubeconfig may have: put the output of `causeway remote-secret create` there", len(data), MaxKubeconfigBytes)
	}
	var doc map[string]any
	if err := yaml.Unmarshal(data, &doc); err != nil || doc == nil {
		return nil, "", errors.New("it is not a kubeconfig (a YAML document with clusters, users and contexts): put the output of `causeway remote-secret create` (or `istioctl create-remote-secret`) there")
	}
	cfg, err := clientcmd.Load(data)
	if err != nil {
		return nil, "", fmt.Errorf("it does not parse (%w): it must be a kubeconfig as `causeway remote-secret create` writes", err)
	}
	clean := clientcmdapi.NewConfig()
	for _, n := range slices.Sorted(maps.Keys(cfg.Clusters)) {
		c, err := sanitizeCluster(n, cfg.Clusters[n], p)
		if err != nil {
			return nil, "", err
		}
		clean.Clusters[n] = c
	}
	for _, n := range slices.Sorted(maps.Keys(cfg.AuthInfos)) {
		u, err := sanitizeUser(n, cfg.AuthInfos[n], p)
		if err != nil {
			return nil, "", err
		}
		clean.AuthInfos[n] = u
	}
	for n, c := range cfg.Contexts {
		if c == nil {
			continue
		}
		clean.Contexts[n] = &clientcmdapi.Context{Cluster: c.Cluster, AuthInfo: c.AuthInfo, Namespace: c.Namespace}
	}

	name := cfg.CurrentContext
	if name == "" {
		if len(clean.Contexts) != 1 {
			return nil, "", fmt.Errorf("it has no current-context and %d contexts: set current-context", len(clean.Contexts))
		}
		for n := range clean.Contexts {
			name = n
		}
	}
	kctx, ok := clean.Contexts[name]
	if !ok {
		return nil, "", fmt.Errorf("its current-context %q is not among its contexts %v", name, slices.Sorted(maps.Keys(clean.Contexts)))
	}
	if _, ok := clean.Clusters[kctx.Cluster]; !ok {
		return nil, "", fmt.Errorf("context %q names cluster %q, which it does not define", name, kctx.Cluster)
	}
	user, ok := clean.AuthInfos[kctx.AuthInfo]
	if !ok {
		return nil, "", fmt.Errorf("context %q names user %q, which it does not define", name, kctx.AuthInfo)
	}
	if user.Token == "" && len(user.ClientCertificateData) == 0 && user.Username == "" {
		return nil, "", fmt.Errorf("user %q has no credential: give it a token (causeway remote-secret create writes one) or a client certificate", kctx.AuthInfo)
	}
	clean.CurrentContext = name
	return clean, name, nil
}

// sanitizeCluster rebuilds a cluster entry from the allowed fields.
func sanitizeCluster(name string, c *clientcmdapi.Cluster, p KubeconfigPolicy) (*clientcmdapi.Cluster, error) {
	if c == nil {
		return nil, fmt.Errorf("cluster %q is empty: set clusters[].cluster.server", name)
	}
	switch {
	case c.Server == "":
		return nil, fmt.Errorf("cluster %q has no server URL: set clusters[].cluster.server", name)
	case c.CertificateAuthority != "":
		return nil, refused("cluster %q names a certificate-authority file (%s), which is never read on a remote kubeconfig's behalf: inline it as certificate-authority-data", name, c.CertificateAuthority)
	case c.InsecureSkipTLSVerify && !p.Allows(OptionInsecureSkipTLSVerify):
		return nil, needsOption(fmt.Sprintf("cluster %q sets insecure-skip-tls-verify", name), OptionInsecureSkipTLSVerify,
			"give the server's CA as certificate-authority-data")
	case c.ProxyURL != "" && !p.Allows(OptionProxyURL):
		return nil, needsOption(fmt.Sprintf("cluster %q sets proxy-url", name), OptionProxyURL, "remove proxy-url")
	}
	if err := checkServer(name, c.Server, p); err != nil {
		return nil, err
	}
	out := &clientcmdapi.Cluster{
		Server:                   c.Server,
		TLSServerName:            c.TLSServerName,
		CertificateAuthorityData: slices.Clone(c.CertificateAuthorityData),
		DisableCompression:       c.DisableCompression,
	}
	if p.Allows(OptionInsecureSkipTLSVerify) {
		out.InsecureSkipTLSVerify = c.InsecureSkipTLSVerify
	}
	if p.Allows(OptionProxyURL) {
		out.ProxyURL = c.ProxyURL
	}
	return out, nil
}

// checkServer refuses a server URL that does not parse or, unless
// allowed, whose host is link-local. It resolves no name.
func checkServer(name, server string, p KubeconfigPolicy) error {
	raw := server
	if !strings.Contains(raw, "://") {
		raw = "https://" + raw
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return fmt.Errorf("cluster %q: server %q is not a URL: write https://HOST:PORT", name, server)
	}
	if u.Scheme != "https" && u.Scheme != "http" {
		return fmt.Errorf("cluster %q: server %q: scheme %q is not http or https: write https://HOST:PORT", name, server, u.Scheme)
	}
	if u.User != nil && !p.Allows(OptionBasicAuth) {
		return needsOption(fmt.Sprintf("cluster %q: server %q carries a user name or password", name, server), OptionBasicAuth,
			"remove user:password@ from the URL")
	}
	if p.Allows(OptionLinkLocalServer) {
		return nil
	}
	host := u.Hostname()
	if h, _, err := net.SplitHostPort(u.Host); err == nil {
		host = h
	}
	host = strings.TrimSuffix(host, ".")
	if i := strings.IndexByte(host, '%'); i >= 0 {
		// An IPv6 zone: the address before it decides.
		host = host[:i]
	}
	if metadataNames[strings.ToLower(host)] {
		return needsOption(fmt.Sprintf("cluster %q names server %s, a cloud metadata service", name, server),
			OptionLinkLocalServer, "name the cluster's API server")
	}
	if a, err := netip.ParseAddr(host); err == nil {
		if a = a.Unmap(); a.IsLinkLocalUnicast() || metadataAddrs[a] {
			return needsOption(fmt.Sprintf("cluster %q names server %s, a link-local address (where cloud metadata services listen)", name, server),
				OptionLinkLocalServer, "name the cluster's API server")
		}
		return nil
	}
	// Resolvers that accept inet_aton's forms (2852039166, 0xa9fea9fe,
	// 169.254.43518) would turn such a "name" into any address; no DNS
	// name ends in a numeric label.
	labels := strings.Split(host, ".")
	if last := strings.ToLower(labels[len(labels)-1]); last == "" || strings.HasPrefix(last, "0x") || strings.Trim(last, "0123456789") == "" {
		return refused("cluster %q: server %q is neither an IP address nor a DNS name: write the API server's address as https://HOST:PORT", name, server)
	}
	return nil
}

// Cloud metadata services outside the link-local ranges, refused with
// them: Google's names, AWS's IPv6 address, Alibaba's address.
var (
	metadataNames = map[string]bool{"metadata.google.internal": true, "metadata.goog": true, "metadata": true}
	metadataAddrs = map[netip.Addr]bool{
		netip.MustParseAddr("fd00:ec2::254"):   true,
		netip.MustParseAddr("100.100.100.200"): true,
	}
)

// sanitizeUser rebuilds a user entry from the allowed fields.
func sanitizeUser(name string, u *clientcmdapi.AuthInfo, p KubeconfigPolicy) (*clientcmdapi.AuthInfo, error) {
	if u == nil {
		return &clientcmdapi.AuthInfo{}, nil
	}
	switch {
	case u.Exec != nil:
		return nil, refused("user %q authenticates with an exec plugin (%s), which is never run on a remote kubeconfig's behalf: use a service-account token (causeway remote-secret create writes one)", name, u.Exec.Command)
	case u.AuthProvider != nil:
		return nil, refused("user %q authenticates with auth-provider %q, which is never used on a remote kubeconfig's behalf: use a service-account token (causeway remote-secret create writes one)", name, u.AuthProvider.Name)
	case u.TokenFile != "":
		return nil, refused("user %q names a token file (%s), which is never read on a remote kubeconfig's behalf: inline the token", name, u.TokenFile)
	case u.ClientCertificate != "" || u.ClientKey != "":
		return nil, refused("user %q names client certificate or key files, which are never read on a remote kubeconfig's behalf: inline them as client-certificate-data and client-key-data", name)
	case (u.Impersonate != "" || u.ImpersonateUID != "" || len(u.ImpersonateGroups) > 0 || len(u.ImpersonateUserExtra) > 0) && !p.Allows(OptionImpersonate):
		return nil, needsOption(fmt.Sprintf("user %q impersonates (as, as-uid, as-groups or as-user-extra)", name), OptionImpersonate,
			"give the account's own token instead")
	case (u.Username != "" || u.Password != "") && !p.Allows(OptionBasicAuth):
		return nil, needsOption(fmt.Sprintf("user %q uses basic auth (username and password)", name), OptionBasicAuth,
			"use a service-account token (causeway remote-secret create writes one)")
	}
	out := &clientcmdapi.AuthInfo{
		Token:                 u.Token,
		ClientCertificateData: slices.Clone(u.ClientCertificateData),
		ClientKeyData:         slices.Clone(u.ClientKeyData),
	}
	if p.Allows(OptionImpersonate) {
		out.Impersonate = u.Impersonate
		out.ImpersonateUID = u.ImpersonateUID
		out.ImpersonateGroups = slices.Clone(u.ImpersonateGroups)
		out.ImpersonateUserExtra = maps.Clone(u.ImpersonateUserExtra)
	}
	if p.Allows(OptionBasicAuth) {
		out.Username, out.Password = u.Username, u.Password
	}
	return out, nil
}

// checkRESTConfig checks the built client configuration once more, so that
// a change in client-go's mapping cannot let a plugin or a path through.
func checkRESTConfig(rc *rest.Config, p KubeconfigPolicy) error {
	switch {
	case rc.ExecProvider != nil, rc.AuthProvider != nil, rc.AuthConfigPersister != nil:
		return refused("the kubeconfig would use a credential plugin")
	case rc.BearerTokenFile != "", rc.CertFile != "", rc.KeyFile != "", rc.CAFile != "":
		return refused("the kubeconfig would read a local file")
	case rc.Insecure && !p.Allows(OptionInsecureSkipTLSVerify):
		return refused("the kubeconfig would skip TLS verification")
	case rc.Proxy != nil && !p.Allows(OptionProxyURL):
		return refused("the kubeconfig would use a proxy")
	case (rc.Impersonate.UserName != "" || rc.Impersonate.UID != "" || len(rc.Impersonate.Groups) > 0 || len(rc.Impersonate.Extra) > 0) && !p.Allows(OptionImpersonate):
		return refused("the kubeconfig would impersonate")
	case (rc.Username != "" || rc.Password != "") && !p.Allows(OptionBasicAuth):
		return refused("the kubeconfig would use basic auth")
	}
	return nil
}
