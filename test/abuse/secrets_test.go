package abuse

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/causeway-mesh/causeway/internal/clusters"
	"github.com/causeway-mesh/causeway/internal/debug"
	"github.com/causeway-mesh/causeway/internal/testenv"
	"github.com/causeway-mesh/causeway/internal/testkit"
	"github.com/causeway-mesh/causeway/internal/testreq"
)

// The hostile remote secrets are played against a real `causeway serve`
// and `causeway check` on a real API server. The "remote API server" they
// name is a loopback HTTPS server of the test that records every
// Authorization header it receives: a secret's author would run it to
// collect what the control plane sends.

// secretLocalToken is the token in a file of the control plane's machine
// that a tokenFile secret points at: it must never leave the machine.
const secretLocalToken = "local-token-never-sent-5f1c"

// secretRecorder is the author's "API server": it records the
// Authorization headers and answers nothing useful.
type secretRecorder struct {
	srv  *httptest.Server
	mu   sync.Mutex
	auth []string
}

func newSecretRecorder(t *testing.T) *secretRecorder {
	t.Helper()
	r := &secretRecorder{}
	r.srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.mu.Lock()
		if a := req.Header.Get("Authorization"); a != "" {
			r.auth = append(r.auth, a)
		}
		r.mu.Unlock()
		http.Error(w, `{"kind":"Status","apiVersion":"v1","status":"Failure","code":401}`, http.StatusUnauthorized)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

// caData is the recorder's certificate, so that a secret's TLS to it would
// succeed: only the sanitizer stands between the secret and the request.
func (r *secretRecorder) caData() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: r.srv.Certificate().Raw})
}

// sawToken reports whether any request carried tok.
func (r *secretRecorder) sawToken(tok string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.ContainsFunc(r.auth, func(a string) bool { return strings.Contains(a, tok) })
}

// secretCase is one hostile remote secret: its data key (the cluster id),
// its kubeconfig, the refusal /debug/clusters and check must show, and the
// marker file that exists if its plugin ran.
type secretCase struct {
	key        string
	kubeconfig string
	wantErr    string
	marker     string
}

// secretKubeconfig is a kubeconfig whose current context uses user cur
// (YAML of the user's fields) against server, plus extra YAML appended to
// the users and contexts.
func secretKubeconfig(server string, ca []byte, cur, extraUsers, extraContexts string) string {
	caB64 := base64.StdEncoding.EncodeToString(ca)
	return fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: remote
  cluster:
    server: %s
    certificate-authority-data: %s
users:
- name: remote
  user:
%s
%scontexts:
- name: remote
  context: {cluster: remote, user: remote}
%scurrent-context: remote
`, server, caB64, cur, extraUsers, extraContexts)
}

// secretExec is an exec plugin that creates marker when it runs.
func secretExec(marker string) string {
	return fmt.Sprintf(`    exec:
      apiVersion: client.authentication.k8s.io/v1
      interactiveMode: Never
      command: /bin/sh
      args: ["-c", "touch %s; echo '{\"apiVersion\":\"client.authentication.k8s.io/v1\",\"kind\":\"ExecCredential\",\"status\":{\"token\":\"x\"}}'"]`, marker)
}

// secretCases are the hostile secrets of issue 14: an exec plugin, a
// tokenFile naming a file of the reader's machine, and an exec plugin on
// a user of another context than the current one.
func secretCases(t *testing.T, rec *secretRecorder) []secretCase {
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte(secretLocalToken), 0o600); err != nil {
		t.Fatal(err)
	}
	url, ca := rec.srv.URL, rec.caData()
	execMarker := filepath.Join(dir, "exec-ran")
	otherMarker := filepath.Join(dir, "other-context-exec-ran")
	return []secretCase{
		{
			key:        "evil-exec",
			kubeconfig: secretKubeconfig(url, ca, secretExec(execMarker), "", ""),
			wantErr:    "exec plugin (/bin/sh)",
			marker:     execMarker,
		},
		{
			key:        "evil-tokenfile",
			kubeconfig: secretKubeconfig(url, ca, "    tokenFile: "+tokenFile, "", ""),
			wantErr:    "token file (" + tokenFile + ")",
		},
		{
			key: "evil-other-context",
			kubeconfig: secretKubeconfig(url, ca, "    token: harmless",
				"- name: other\n  user:\n"+secretExec(otherMarker)+"\n",
				"- name: other\n  context: {cluster: remote, user: other}\n"),
			wantErr: `user "other" authenticates with an exec plugin (/bin/sh)`,
			marker:  otherMarker,
		},
	}
}

// secretPlant writes the hostile secrets into the system namespace.
func secretPlant(t *testing.T, c *testenv.Cluster, cases []secretCase) {
	t.Helper()
	ctx := t.Context()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "istio-system"}}
	if _, err := c.Client().CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	for _, tc := range cases {
		s := &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{
				Name:      "istio-remote-secret-" + tc.key,
				Namespace: "istio-system",
				Labels:    map[string]string{clusters.LabelMultiCluster: "true"},
			},
			Data: map[string][]byte{tc.key: []byte(tc.kubeconfig)},
		}
		if _, err := c.Client().CoreV1().Secrets("istio-system").Create(ctx, s, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
}

// secretAssertHarmless checks that no plugin ran and no local token left.
func secretAssertHarmless(t *testing.T, who string, rec *secretRecorder, cases []secretCase) {
	t.Helper()
	for _, tc := range cases {
		if tc.marker == "" {
			continue
		}
		if _, err := os.Stat(tc.marker); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s ran the exec plugin of secret %s (marker %s: %v)", who, tc.key, tc.marker, err)
		}
	}
	if rec.sawToken(secretLocalToken) {
		t.Errorf("%s sent the token of a local file to the secret author's server", who)
	}
}

// secretServe starts `causeway serve` on loopback ports and stops it (by
// its pid, SIGTERM then SIGKILL) when the test ends. It returns the debug
// address and the process's combined output so far.
func secretServe(t *testing.T, bin, kubeconfig string) (string, func() string) {
	t.Helper()
	dbg := testkit.FreeAddrs(t, 1)[0]
	p := testkit.Start(t, 10*time.Second, bin, "serve", "--drain-duration=0",
		"--cluster-id", "primary",
		"--kubeconfig", kubeconfig,
		"--xds-addr", testkit.FreeAddrs(t, 1)[0],
		"--xds-tls-addr=",
		"--webhook-addr=",
		"--debug-addr", dbg,
		"--cluster-sync-timeout", "20s",
	)
	return dbg, p.Log.String
}

// secretLogLimit bounds what a test keeps of a process's output.
const secretLogLimit = 4 << 20

// secretClusters reads /debug/clusters.
func secretClusters(ctx context.Context, addr string) ([]clusters.Status, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+debug.PathClusters, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %d %s", debug.PathClusters, resp.StatusCode, body)
	}
	var r debug.ClustersResponse
	if err := json.Unmarshal(body, &r); err != nil {
		return nil, err
	}
	return r.Clusters, nil
}

// TestSecretsAgainstServe: a real `causeway serve` refuses each hostile
// remote secret, says why in /debug/clusters, runs no plugin and sends no
// local token.
func TestSecretsAgainstServe(t *testing.T) {
	testreq.NotShort(t, "abuse test: starts a kube-apiserver and the causeway binary")
	c := testenv.StartClusters(t, 1)[0]
	rec := newSecretRecorder(t)
	cases := secretCases(t, rec)
	secretPlant(t, c, cases)
	bin := testkit.CausewayBinary(t)
	dbg, _ := secretServe(t, bin, c.WriteKubeconfig(t))

	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	var last []clusters.Status
	err := wait.PollUntilContextCancel(ctx, 200*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		st, err := secretClusters(ctx, dbg)
		if err != nil {
			return false, nil //nolint:nilerr // the server is starting: retry
		}
		last = st
		for _, tc := range cases {
			if !slices.ContainsFunc(st, func(s clusters.Status) bool { return string(s.ID) == tc.key }) {
				return false, nil
			}
		}
		return true, nil
	})
	if err != nil {
		t.Fatalf("/debug/clusters never listed every hostile secret: %v; last %+v", err, last)
	}
	for _, tc := range cases {
		i := slices.IndexFunc(last, func(s clusters.Status) bool { return string(s.ID) == tc.key })
		s := last[i]
		if s.State != clusters.StateError || !strings.Contains(s.Error, tc.wantErr) || !strings.Contains(s.Error, "never") {
			t.Errorf("/debug/clusters %s: state %s, error %q; want state error with %q", tc.key, s.State, s.Error, tc.wantErr)
		}
	}
	secretAssertHarmless(t, "causeway serve", rec, cases)
}

// TestSecretsAgainstCheck: `causeway check` on the cluster that holds the
// hostile secrets fails their lines with the refusal, runs no plugin and
// sends no local token.
func TestSecretsAgainstCheck(t *testing.T) {
	testreq.NotShort(t, "abuse test: starts a kube-apiserver and the causeway binary")
	c := testenv.StartClusters(t, 1)[0]
	rec := newSecretRecorder(t)
	cases := secretCases(t, rec)
	secretPlant(t, c, cases)
	bin := testkit.CausewayBinary(t)

	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "check", "--kubeconfig", c.WriteKubeconfig(t), "-o", "json", "--timeout", "5s")
	stdout, stderr := testkit.LogBuffer{Limit: secretLogLimit}, testkit.LogBuffer{Limit: secretLogLimit}
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 {
		t.Fatalf("causeway check: %v, want exit status 1 (failed checks)\nstderr:\n%s", err, stderr.String())
	}
	var report struct {
		Results []struct {
			Status, Cluster, Check, Message string
		} `json:"results"`
	}
	if err := json.Unmarshal([]byte(stdout.String()), &report); err != nil {
		t.Fatalf("check -o json: %v\n%s", err, stdout.String())
	}
	for _, tc := range cases {
		found := slices.ContainsFunc(report.Results, func(r struct{ Status, Cluster, Check, Message string }) bool {
			return r.Check == "remote-secret" && r.Status == "fail" &&
				strings.Contains(r.Message, "key "+tc.key+" was not used") && strings.Contains(r.Message, tc.wantErr)
		})
		if !found {
			t.Errorf("check reports no refusal of secret %s (%q); results:\n%s", tc.key, tc.wantErr, stdout.String())
		}
	}
	secretAssertHarmless(t, "causeway check", rec, cases)
}
