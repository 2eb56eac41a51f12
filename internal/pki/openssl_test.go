package pki

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// openssl returns a runner of the openssl binary, whose verifier is another
// implementation than crypto/x509's. Without it the test is skipped, except
// in CI (CI=true), where it must be installed.
func openssl(t *testing.T) func(args ...string) (string, error) {
	t.Helper()
	path, err := exec.LookPath("openssl")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("openssl is required in CI: %v (run make deps)", err)
		}
		t.Skipf("openssl not installed: %v", err)
	}
	return func(args ...string) (string, error) {
		cmd := exec.CommandContext(t.Context(), path, args...)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
}

// writeFiles writes name -> content into a new temp dir and returns it.
func writeFiles(t *testing.T, files map[string][]byte) string {
	t.Helper()
	dir := t.TempDir()
	for name, data := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestOpenSSLVerifies(t *testing.T) {
	run := openssl(t)
	for _, kt := range []KeyType{KeyEC, KeyRSA} {
		t.Run(string(kt), func(t *testing.T) {
			rootCert, rootKey := testRoot(t, RootOptions{KeyType: kt})
			c1, err := NewIntermediate(IntermediateOptions{RootCert: rootCert, RootKey: rootKey, Cluster: "cluster1", KeyType: kt})
			if err != nil {
				t.Fatal(err)
			}
			c2 := testIntermediate(t, rootCert, rootKey, "cluster2")
			otherRoot, otherKey := testRoot(t, RootOptions{KeyType: kt})
			c3 := testIntermediate(t, otherRoot, otherKey, "cluster3")
			ca1 := testCA(t, c1)
			csr, _ := testCSR(t, []string{spiffeA}, nil, nil)
			workload, err := ca1.SignCSR(csr, SANs{URIs: []string{spiffeA}}, time.Hour)
			if err != nil {
				t.Fatal(err)
			}
			key, err := newKey(kt, 0)
			if err != nil {
				t.Fatal(err)
			}
			serving, err := ca1.SignServing(key.Public(), []string{"causeway.istio-system.svc"}, time.Hour)
			if err != nil {
				t.Fatal(err)
			}
			dir := writeFiles(t, map[string][]byte{
				"cluster1/ca-cert.pem":    c1.CACert,
				"cluster1/ca-key.pem":     c1.CAKey,
				"cluster1/root-cert.pem":  c1.RootCert,
				"cluster1/cert-chain.pem": c1.CertChain,
				"cluster2/root-cert.pem":  c2.RootCert,
				"cluster3/root-cert.pem":  c3.RootCert,
				"workload.pem":            workload.CertPEM(),
				"workload-chain.pem":      workload.ChainPEM(),
				"serving.pem":             serving.CertPEM(),
			})
			f := func(name string) string { return filepath.Join(dir, name) }
			verify := func(root, untrusted, cert, purpose string) (string, error) {
				args := []string{"verify", "-x509_strict", "-CAfile", f(root)}
				if untrusted != "" {
					args = append(args, "-untrusted", f(untrusted))
				}
				if purpose != "" {
					args = append(args, "-purpose", purpose)
				}
				return run(append(args, f(cert))...)
			}
			ok := []struct{ root, untrusted, cert, purpose string }{
				{"cluster1/root-cert.pem", "", "cluster1/ca-cert.pem", ""},
				{"cluster1/root-cert.pem", "cluster1/ca-cert.pem", "workload.pem", "sslclient"},
				{"cluster1/root-cert.pem", "cluster1/ca-cert.pem", "workload.pem", "sslserver"},
				{"cluster1/root-cert.pem", "cluster1/cert-chain.pem", "workload.pem", "sslclient"},
				{"cluster1/root-cert.pem", "cluster1/ca-cert.pem", "serving.pem", "sslserver"},
				// cluster2 trusts cluster1's workload: the same root.
				{"cluster2/root-cert.pem", "cluster1/ca-cert.pem", "workload.pem", "sslclient"},
				{"cluster2/root-cert.pem", "workload-chain.pem", "workload.pem", "sslserver"},
			}
			for _, c := range ok {
				out, err := verify(c.root, c.untrusted, c.cert, c.purpose)
				if err != nil || !strings.Contains(out, ": OK") {
					t.Errorf("openssl verify -CAfile %s -untrusted %s -purpose %s %s: %v\n%s", c.root, c.untrusted, c.purpose, c.cert, err, out)
				}
			}
			bad := []struct{ root, untrusted, cert, purpose, want string }{
				{"cluster3/root-cert.pem", "cluster1/ca-cert.pem", "workload.pem", "sslclient", "unable to get local issuer certificate"},
				{"cluster1/root-cert.pem", "", "workload.pem", "sslclient", "unable to get local issuer certificate"},
				{"cluster1/root-cert.pem", "cluster1/ca-cert.pem", "serving.pem", "sslclient", "unsuitable certificate purpose"},
			}
			for _, c := range bad {
				if out, err := verify(c.root, c.untrusted, c.cert, c.purpose); err == nil || !strings.Contains(out, c.want) {
					t.Errorf("openssl verify -CAfile %s -untrusted %s -purpose %s %s: %v, want a failure saying %q:\n%s",
						c.root, c.untrusted, c.purpose, c.cert, err, c.want, out)
				}
			}

			// openssl sees Istio's subject order and the key of the cert.
			out, err := run("x509", "-noout", "-subject", "-in", f("cluster1/ca-cert.pem"))
			if err != nil || strings.TrimSpace(out) != "subject=O = Istio, CN = Intermediate CA, L = cluster1" {
				t.Errorf("openssl x509 -subject: %v %q", err, out)
			}
			fromCert, err1 := run("x509", "-noout", "-pubkey", "-in", f("cluster1/ca-cert.pem"))
			fromKey, err2 := run("pkey", "-pubout", "-in", f("cluster1/ca-key.pem"))
			if err1 != nil || err2 != nil || fromCert != fromKey {
				t.Errorf("openssl: ca-key.pem is not the key of ca-cert.pem: %v %v\n%s\n%s", err1, err2, fromCert, fromKey)
			}
		})
	}
}

// TestOpenSSLMadeBundle loads a cacerts bundle made with openssl the way
// Istio's Makefile.selfsigned.mk makes it, and signs with it.
func TestOpenSSLMadeBundle(t *testing.T) {
	run := openssl(t)
	dir := writeFiles(t, map[string][]byte{
		"root-ca.conf": []byte(`[ req ]
encrypt_key = no
prompt = no
utf8 = yes
default_md = sha256
req_extensions = req_ext
x509_extensions = req_ext
distinguished_name = req_dn
[ req_ext ]
subjectKeyIdentifier = hash
basicConstraints = critical, CA:true
keyUsage = critical, digitalSignature, nonRepudiation, keyEncipherment, keyCertSign
[ req_dn ]
O = Istio
CN = Root CA
`),
		"cluster1/intermediate.conf": []byte(`[ req ]
encrypt_key = no
prompt = no
utf8 = yes
default_md = sha256
req_extensions = req_ext
x509_extensions = req_ext
distinguished_name = req_dn
[ req_ext ]
subjectKeyIdentifier = hash
basicConstraints = critical, CA:true, pathlen:0
keyUsage = critical, digitalSignature, nonRepudiation, keyEncipherment, keyCertSign
subjectAltName = @san
[ san ]
DNS.1 = istiod.istio-system.svc
[ req_dn ]
O = Istio
CN = Intermediate CA
L = cluster1
`),
	})
	steps := [][]string{
		{"genrsa", "-out", "root-key.pem", "2048"},
		{"req", "-sha256", "-new", "-key", "root-key.pem", "-config", "root-ca.conf", "-out", "root-cert.csr"},
		{"x509", "-req", "-sha256", "-days", "3650", "-signkey", "root-key.pem", "-extensions", "req_ext",
			"-extfile", "root-ca.conf", "-in", "root-cert.csr", "-out", "root-cert.pem"},
		{"genrsa", "-out", "cluster1/ca-key.pem", "2048"},
		{"req", "-sha256", "-new", "-config", "cluster1/intermediate.conf", "-key", "cluster1/ca-key.pem", "-out", "cluster1/cluster-ca.csr"},
		{"x509", "-req", "-sha256", "-days", "730", "-CA", "root-cert.pem", "-CAkey", "root-key.pem", "-CAcreateserial",
			"-extensions", "req_ext", "-extfile", "cluster1/intermediate.conf", "-in", "cluster1/cluster-ca.csr", "-out", "cluster1/ca-cert.pem"},
	}
	for _, s := range steps {
		for i, a := range s {
			if strings.HasSuffix(a, ".pem") || strings.HasSuffix(a, ".conf") || strings.HasSuffix(a, ".csr") {
				s[i] = filepath.Join(dir, a)
			}
		}
		if out, err := run(s...); err != nil {
			t.Fatalf("openssl %s: %v\n%s", strings.Join(s, " "), err, out)
		}
	}
	read := func(name string) []byte {
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		return data
	}
	b := Bundle{
		CACert:    read("cluster1/ca-cert.pem"),
		CAKey:     read("cluster1/ca-key.pem"),
		RootCert:  read("root-cert.pem"),
		CertChain: bytes.Join([][]byte{read("cluster1/ca-cert.pem"), read("root-cert.pem")}, nil),
	}
	ca := testCA(t, b)
	csr, _ := testCSR(t, []string{spiffeA}, nil, nil)
	issued, err := ca.SignCSR(csr, SANs{URIs: []string{spiffeA}}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if err := Verify(issued.ChainPEM(), b.RootCert, VerifyOptions{}); err != nil {
		t.Errorf("Verify: %v", err)
	}
	infos, err := Inspect(b.CertChain)
	if err != nil {
		t.Fatal(err)
	}
	if got := infos[0].Subject; got != "CN=Intermediate CA,O=Istio,L=cluster1" {
		t.Errorf("subject %q, Istio logs CN=Intermediate CA,O=Istio,L=cluster1", got)
	}
	// A root made by this package signs an intermediate openssl verifies,
	// and the other way round: an openssl root signs ours.
	ours, err := NewIntermediate(IntermediateOptions{RootCert: read("root-cert.pem"), RootKey: read("root-key.pem"), Cluster: "cluster2"})
	if err != nil {
		t.Fatalf("NewIntermediate with the openssl root: %v", err)
	}
	dir2 := writeFiles(t, map[string][]byte{"ca-cert.pem": ours.CACert})
	if out, err := run("verify", "-x509_strict", "-CAfile", filepath.Join(dir, "root-cert.pem"), filepath.Join(dir2, "ca-cert.pem")); err != nil {
		t.Errorf("openssl verify of our intermediate under the openssl root: %v\n%s", err, out)
	}
}
