package clusters

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// testPEM returns a self-signed certificate and its key, PEM, base64.
func testPEM(t *testing.T) (cert, key string) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	kd, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	enc := func(typ string, b []byte) string {
		return base64.StdEncoding.EncodeToString(pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: b}))
	}
	return enc("CERTIFICATE", der), enc("EC PRIVATE KEY", kd)
}

func kubeconfig(cluster, user string) string {
	return `apiVersion: v1
kind: Config
clusters:
- name: c
  cluster:
` + cluster + `
users:
- name: u
  user:
` + user + `
contexts:
- name: ctx
  context: {cluster: c, user: u}
current-context: ctx
`
}

func TestKubeconfigClients(t *testing.T) {
	cert, key := testPEM(t)
	goodCluster := "    server: https://10.0.0.1:6443\n    certificate-authority-data: " + cert
	goodUser := "    token: abc"
	tests := []struct {
		name    string
		data    string
		wantErr string
		server  string
	}{
		{name: "token", data: kubeconfig(goodCluster, goodUser), server: "https://10.0.0.1:6443"},
		{name: "client certificate", data: kubeconfig(goodCluster, "    client-certificate-data: "+cert+"\n    client-key-data: "+key), server: "https://10.0.0.1:6443"},
		{name: "bad CA data", data: kubeconfig("    server: https://x\n    certificate-authority-data: eA==", goodUser), wantErr: "root certificates"},
		{name: "empty", data: "", wantErr: "it is empty"},
		{name: "not yaml", data: "{{{", wantErr: "it is not a kubeconfig"},
		{name: "a string", data: "this is not a kubeconfig", wantErr: "it is not a kubeconfig"},
		{name: "wrong kind", data: "apiVersion: v1\nkind: Pod\n", wantErr: "does not parse"},
		{name: "no context", data: "apiVersion: v1\nkind: Config\n", wantErr: "no current-context and 0 contexts"},
		{name: "unknown context", data: strings.Replace(kubeconfig(goodCluster, goodUser), "current-context: ctx", "current-context: other", 1), wantErr: `current-context "other" is not among its contexts [ctx]`},
		{name: "no server", data: kubeconfig("    insecure-skip-tls-verify: true", goodUser), wantErr: "has no server URL"},
		{name: "CA file", data: kubeconfig("    server: https://x\n    certificate-authority: /etc/ca.crt", goodUser), wantErr: "certificate-authority file"},
		{name: "exec plugin", data: kubeconfig(goodCluster, "    exec: {command: aws, apiVersion: client.authentication.k8s.io/v1}"), wantErr: "exec plugin (aws)"},
		{name: "auth provider", data: kubeconfig(goodCluster, "    auth-provider: {name: gcp}"), wantErr: `auth-provider "gcp"`},
		{name: "token file", data: kubeconfig(goodCluster, "    tokenFile: /var/run/secrets/token"), wantErr: "token file"},
		{name: "client cert files", data: kubeconfig(goodCluster, "    client-certificate: /a.crt\n    client-key: /a.key"), wantErr: "certificate or key files"},
		{name: "no credential", data: kubeconfig(goodCluster, "    {}"), wantErr: "has no credential"},
		{name: "insecure", data: kubeconfig("    server: https://10.0.0.1:6443\n    insecure-skip-tls-verify: true", goodUser), wantErr: "--allow-kubeconfig-option=insecure-skip-tls-verify"},
		{name: "proxy url", data: kubeconfig(goodCluster+"\n    proxy-url: http://attacker:3128", goodUser), wantErr: "--allow-kubeconfig-option=proxy-url"},
		{name: "impersonation", data: kubeconfig(goodCluster, goodUser+"\n    as: system:admin"), wantErr: "--allow-kubeconfig-option=impersonate"},
		{name: "impersonated groups", data: kubeconfig(goodCluster, goodUser+"\n    as-groups: [system:masters]"), wantErr: "--allow-kubeconfig-option=impersonate"},
		{name: "basic auth", data: kubeconfig(goodCluster, "    username: admin\n    password: secret"), wantErr: "--allow-kubeconfig-option=basic-auth"},
		{name: "metadata server", data: kubeconfig("    server: http://169.254.169.254\n    certificate-authority-data: "+cert, goodUser), wantErr: "--allow-kubeconfig-option=link-local-server"},
		{name: "mapped metadata server", data: kubeconfig("    server: https://[::ffff:169.254.169.254]:443\n    certificate-authority-data: "+cert, goodUser), wantErr: "link-local"},
		{name: "link-local v6 server", data: kubeconfig("    server: https://[fe80::1%25eth0]:443\n    certificate-authority-data: "+cert, goodUser), wantErr: "link-local"},
		{name: "metadata name", data: kubeconfig("    server: http://metadata.google.internal\n    certificate-authority-data: "+cert, goodUser), wantErr: "--allow-kubeconfig-option=link-local-server"},
		{name: "AWS IPv6 metadata", data: kubeconfig("    server: http://[fd00:ec2::254]\n    certificate-authority-data: "+cert, goodUser), wantErr: "cloud metadata"},
		{name: "user in server URL", data: kubeconfig("    server: https://admin:pw@10.0.0.1:6443\n    certificate-authority-data: "+cert, goodUser), wantErr: "--allow-kubeconfig-option=basic-auth"},
		{name: "numeric host", data: kubeconfig("    server: https://2852039166\n    certificate-authority-data: "+cert, goodUser), wantErr: "neither an IP address nor a DNS name"},
		{name: "hex host", data: kubeconfig("    server: https://0xa9fea9fe\n    certificate-authority-data: "+cert, goodUser), wantErr: "neither an IP address nor a DNS name"},
		{name: "other context's exec plugin", data: strings.NewReplacer("contexts:\n", "contexts:\n- name: evil\n  context: {cluster: c, user: evil}\n", "users:\n", "users:\n- name: evil\n  user:\n    exec: {command: /bin/sh, apiVersion: client.authentication.k8s.io/v1}\n").Replace(kubeconfig(goodCluster, goodUser)), wantErr: "exec plugin (/bin/sh)"},
		{name: "unused user's token file", data: strings.Replace(kubeconfig(goodCluster, goodUser), "users:\n", "users:\n- name: unused\n  user:\n    tokenFile: /etc/shadow\n", 1), wantErr: "token file (/etc/shadow)"},
		{name: "unused cluster's CA file", data: strings.Replace(kubeconfig(goodCluster, goodUser), "clusters:\n", "clusters:\n- name: unused\n  cluster:\n    server: https://x\n    certificate-authority: /etc/ca.crt\n", 1), wantErr: "certificate-authority file"},
		{name: "too large", data: kubeconfig(goodCluster, goodUser) + "# " + strings.Repeat("x", MaxKubeconfigBytes), wantErr: "more than the"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := KubeconfigClients("c2", []byte(tt.data))
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("KubeconfigClients() error = %v", err)
				}
				if c.Kube == nil || c.Probe == nil || c.Server != tt.server {
					t.Fatalf("KubeconfigClients() = %+v, want clients of %s", c, tt.server)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), "cluster c2") {
				t.Fatalf("KubeconfigClients() error = %v, want one naming cluster c2 and containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestParseStalePolicy(t *testing.T) {
	tests := []struct {
		in      string
		want    StalePolicy
		wantErr string
	}{
		{in: "", want: StalePolicy{}},
		{in: "keep", want: StalePolicy{}},
		{in: "drop-after=5m", want: StalePolicy{DropAfter: 5 * time.Minute}},
		{in: "drop-after=1.5s", want: StalePolicy{DropAfter: 1500 * time.Millisecond}},
		{in: "drop-after=0s", wantErr: "not a positive duration"},
		{in: "drop-after=soon", wantErr: "not a positive duration"},
		{in: "drop", wantErr: "want keep or drop-after=DURATION"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseStalePolicy(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseStalePolicy(%q) error = %v, want %q", tt.in, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(tt.want, got); d != "" {
				t.Errorf("ParseStalePolicy(%q) (-want +got)\n%s", tt.in, d)
			}
			if back, err := ParseStalePolicy(got.String()); err != nil || back != got {
				t.Errorf("String() %q does not parse back: %v, %v", got.String(), back, err)
			}
		})
	}
}
