package clusters

import (
	"net/netip"
	"net/url"
	"strings"
	"testing"
)

func TestParseKubeconfigPolicy(t *testing.T) {
	p, err := ParseKubeconfigPolicy([]string{"proxy-url, impersonate", "basic-auth"})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := p.String(), "proxy-url,impersonate,basic-auth"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
	if p.Allows(OptionInsecureSkipTLSVerify) || !p.Allows(OptionProxyURL) {
		t.Errorf("Allows: got %v", p)
	}
	if _, err := ParseKubeconfigPolicy([]string{"exec"}); err == nil || !strings.Contains(err.Error(), `"exec"`) || !strings.Contains(err.Error(), "link-local-server") {
		t.Errorf("exec: error = %v, want one refusing exec and listing the options", err)
	}
}

// TestSanitizeKubeconfigOptIn: each refused-by-default option passes once
// the operator allows it, and reaches the client configuration.
func TestSanitizeKubeconfigOptIn(t *testing.T) {
	cert, _ := testPEM(t)
	goodCluster := "    server: https://10.0.0.1:6443\n    certificate-authority-data: " + cert
	tests := []struct {
		opt   KubeconfigOption
		data  string
		check func(t *testing.T, rc *restConfigView)
	}{
		{OptionInsecureSkipTLSVerify, kubeconfig("    server: https://10.0.0.1:6443\n    insecure-skip-tls-verify: true", "    token: abc"),
			func(t *testing.T, rc *restConfigView) {
				if !rc.insecure {
					t.Error("not insecure")
				}
			}},
		{OptionProxyURL, kubeconfig(goodCluster+"\n    proxy-url: http://proxy:3128", "    token: abc"),
			func(t *testing.T, rc *restConfigView) {
				if rc.proxy != "http://proxy:3128" {
					t.Errorf("proxy = %q", rc.proxy)
				}
			}},
		{OptionImpersonate, kubeconfig(goodCluster, "    token: abc\n    as: jane"),
			func(t *testing.T, rc *restConfigView) {
				if rc.impersonate != "jane" {
					t.Errorf("impersonate = %q", rc.impersonate)
				}
			}},
		{OptionBasicAuth, kubeconfig(goodCluster, "    username: u\n    password: p"),
			func(t *testing.T, rc *restConfigView) {
				if rc.username != "u" {
					t.Errorf("username = %q", rc.username)
				}
			}},
		{OptionLinkLocalServer, kubeconfig("    server: https://169.254.10.1:6443\n    certificate-authority-data: "+cert, "    token: abc"),
			func(t *testing.T, rc *restConfigView) {
				if rc.host != "https://169.254.10.1:6443" {
					t.Errorf("host = %q", rc.host)
				}
			}},
	}
	for _, tt := range tests {
		t.Run(string(tt.opt), func(t *testing.T) {
			if _, err := SanitizeKubeconfig([]byte(tt.data), KubeconfigPolicy{}); err == nil || !strings.Contains(err.Error(), AllowOptionFlag+"="+string(tt.opt)) {
				t.Fatalf("default policy: error = %v, want one naming %s=%s", err, AllowOptionFlag, tt.opt)
			}
			p, err := ParseKubeconfigPolicy([]string{string(tt.opt)})
			if err != nil {
				t.Fatal(err)
			}
			rc, err := SanitizeKubeconfig([]byte(tt.data), p)
			if err != nil {
				t.Fatalf("allowed %s: %v", tt.opt, err)
			}
			v := &restConfigView{host: rc.Host, insecure: rc.Insecure, impersonate: rc.Impersonate.UserName, username: rc.Username}
			if rc.Proxy != nil {
				u, err := rc.Proxy(nil)
				if err != nil {
					t.Fatal(err)
				}
				v.proxy = u.String()
			}
			tt.check(t, v)
		})
	}
}

type restConfigView struct {
	host, proxy, impersonate, username string
	insecure                           bool
}

// TestSanitizeKubeconfigDropsUnknown: fields outside the allowed ones
// (extensions, unknown keys, preferences) do not survive.
func TestSanitizeKubeconfigDropsUnknown(t *testing.T) {
	data := []byte(`apiVersion: v1
kind: Config
preferences: {colors: true}
clusters:
- name: c
  cluster:
    server: https://10.0.0.1:6443
    extensions:
    - name: x
      extension: {a: b}
users:
- name: u
  user:
    token: abc
    surprise: field
contexts:
- name: ctx
  context: {cluster: c, user: u, namespace: ns}
current-context: ctx
`)
	clean, name, err := sanitize(data, KubeconfigPolicy{})
	if err != nil {
		t.Fatal(err)
	}
	if name != "ctx" || len(clean.Clusters["c"].Extensions) != 0 || clean.Clusters["c"].Server != "https://10.0.0.1:6443" || clean.AuthInfos["u"].Token != "abc" {
		t.Errorf("sanitize kept %+v %+v", clean.Clusters["c"], clean.AuthInfos["u"])
	}
}

// FuzzSanitizeKubeconfig: whatever the input, the sanitizer does not
// panic, and what it accepts never carries a plugin, a path or (under the
// default policy) a refused option.
func FuzzSanitizeKubeconfig(f *testing.F) {
	cfg := func(cluster, user string) []byte { return []byte(kubeconfig(cluster, user)) }
	f.Add(cfg("    server: https://10.0.0.1:6443", "    token: abc"))
	f.Add(cfg("    server: https://10.0.0.1:6443", "    exec: {command: /bin/sh, apiVersion: client.authentication.k8s.io/v1}"))
	f.Add(cfg("    server: https://10.0.0.1:6443", "    tokenFile: /etc/passwd"))
	f.Add(cfg("    server: https://169.254.169.254", "    token: abc"))
	f.Add(cfg("    server: https://x\n    insecure-skip-tls-verify: true\n    proxy-url: http://p", "    username: a\n    password: b\n    as: root"))
	f.Add(cfg("    server: https://x\n    certificate-authority: /ca", "    auth-provider: {name: oidc}"))
	f.Add([]byte("{}"))
	f.Add([]byte("apiVersion: v1\nkind: Config\ncontexts: [{name: a, context: {}}]\n"))
	allowAll, err := ParseKubeconfigPolicy([]string{optionList()})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, p := range []KubeconfigPolicy{{}, allowAll} {
			rc, err := SanitizeKubeconfig(data, p)
			if err != nil {
				continue
			}
			switch {
			case rc.ExecProvider != nil, rc.AuthProvider != nil:
				t.Fatalf("accepted a credential plugin: %q", data)
			case rc.BearerTokenFile != "", rc.CertFile != "", rc.KeyFile != "", rc.CAFile != "":
				t.Fatalf("accepted a file path: %q", data)
			}
			if p.String() != "" {
				continue
			}
			if rc.Insecure || rc.Proxy != nil || rc.Impersonate.UserName != "" || len(rc.Impersonate.Groups) > 0 || rc.Username != "" || rc.Password != "" {
				t.Fatalf("default policy accepted a refused option: %q", data)
			}
			host := rc.Host
			if !strings.Contains(host, "://") {
				host = "https://" + host
			}
			if u, err := url.Parse(host); err == nil {
				if a, err := netip.ParseAddr(u.Hostname()); err == nil && a.Unmap().IsLinkLocalUnicast() {
					t.Fatalf("default policy accepted link-local server %s: %q", rc.Host, data)
				}
			}
		}
	})
}
