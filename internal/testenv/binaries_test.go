package testenv

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestRequiredVersion(t *testing.T) {
	tests := []struct {
		name    string
		gomod   string
		want    string
		wantErr bool
	}{
		{
			name:  "one-line require, as build.sh reads it",
			gomod: "module x\n\ngo 1.26.0\n\nrequire k8s.io/kubernetes v1.37.2\n\nrequire (\n\tcel.dev/expr v0.25.1 // indirect\n)\n",
			want:  "v1.37.2",
		},
		{
			name:  "inside a require block, with a comment",
			gomod: "module x\nrequire (\n\tfoo.io/bar v1.0.0\n\tk8s.io/kubernetes v1.36.0 // pinned\n)\n",
			want:  "v1.36.0",
		},
		{
			name:  "a module whose path only starts alike is not it",
			gomod: "module x\nrequire k8s.io/kubernetes-tools v9.9.9\nrequire k8s.io/kubernetes v1.37.2\n",
			want:  "v1.37.2",
		},
		{name: "missing", gomod: "module x\nrequire k8s.io/client-go v0.37.2\n", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := requiredVersion([]byte(tt.gomod), kubeModule)
			if (err != nil) != tt.wantErr {
				t.Fatalf("requiredVersion: error %v, want error %t", err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("requiredVersion = %q, want %q", got, tt.want)
			}
		})
	}
}

// writeTree creates files (path relative to dir -> content) under dir.
func writeTree(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		path := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(content), 0o755); err != nil {
			t.Fatal(err)
		}
	}
}

func TestKubeBinDir(t *testing.T) {
	repo := t.TempDir()
	writeTree(t, repo, map[string]string{
		"go.mod":            "module " + rootModule + "\n\ngo 1.26.0\n",
		"tools/kube/go.mod": "module " + rootModule + "/tools/kube\n\nrequire k8s.io/kubernetes v1.37.2\n",
		"internal/x/x.go":   "package x\n",
	})
	outside := t.TempDir()

	tests := []struct {
		name    string
		env     map[string]string
		wd      string
		want    string
		wantErr bool
	}{
		{
			name: "CAUSEWAY_KUBE_BIN wins",
			env:  map[string]string{"CAUSEWAY_KUBE_BIN": "/opt/kube", "HOME": "/home/u"},
			wd:   outside,
			want: "/opt/kube",
		},
		{
			name: "HOME cache, from a package folder",
			env:  map[string]string{"HOME": "/home/u"},
			wd:   filepath.Join(repo, "internal", "x"),
			want: "/home/u/.cache/causeway/kube/v1.37.2",
		},
		{
			name: "from inside tools/kube, whose go.mod is another module",
			env:  map[string]string{"HOME": "/home/u"},
			wd:   filepath.Join(repo, "tools", "kube"),
			want: "/home/u/.cache/causeway/kube/v1.37.2",
		},
		{
			name: "XDG_CACHE_HOME",
			env:  map[string]string{"HOME": "/home/u", "XDG_CACHE_HOME": "/xdg"},
			wd:   repo,
			want: "/xdg/causeway/kube/v1.37.2",
		},
		{
			name: "CAUSEWAY_KUBE_CACHE",
			env:  map[string]string{"HOME": "/home/u", "XDG_CACHE_HOME": "/xdg", "CAUSEWAY_KUBE_CACHE": "/cache"},
			wd:   repo,
			want: "/cache/v1.37.2",
		},
		{name: "outside the repository", env: map[string]string{"HOME": "/home/u"}, wd: outside, wantErr: true},
		{name: "no home", env: map[string]string{}, wd: repo, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := kubeBinDir(func(k string) string { return tt.env[k] }, tt.wd)
			if (err != nil) != tt.wantErr {
				t.Fatalf("kubeBinDir: error %v, want error %t", err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("kubeBinDir = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestFindBinaries(t *testing.T) {
	full := t.TempDir()
	writeTree(t, full, map[string]string{"kube-apiserver": "#!/bin/sh\n", "kube-controller-manager": "#!/bin/sh\n"})
	apiOnly := t.TempDir()
	writeTree(t, apiOnly, map[string]string{"kube-apiserver": "#!/bin/sh\n"})
	etcdFound := func() (string, error) { return "/usr/bin/etcd", nil }
	etcdMissing := func() (string, error) { return "", errors.New("not found") }

	tests := []struct {
		name      string
		dir       string
		etcd      func() (string, error)
		withKCM   bool
		want      Binaries
		wantInErr []string // substrings the error must hold; none: no error
	}{
		{
			name:    "all there",
			dir:     full,
			etcd:    etcdFound,
			withKCM: true,
			want: Binaries{
				Etcd:                  "/usr/bin/etcd",
				KubeAPIServer:         filepath.Join(full, "kube-apiserver"),
				KubeControllerManager: filepath.Join(full, "kube-controller-manager"),
			},
		},
		{
			name: "controller-manager not needed",
			dir:  apiOnly,
			etcd: etcdFound,
			want: Binaries{Etcd: "/usr/bin/etcd", KubeAPIServer: filepath.Join(apiOnly, "kube-apiserver")},
		},
		{
			name:      "controller-manager needed and missing",
			dir:       apiOnly,
			etcd:      etcdFound,
			withKCM:   true,
			want:      Binaries{Etcd: "/usr/bin/etcd", KubeAPIServer: filepath.Join(apiOnly, "kube-apiserver")},
			wantInErr: []string{"kube-controller-manager not found", "tools/kube/build.sh"},
		},
		{
			name:      "nothing there",
			dir:       t.TempDir(),
			etcd:      etcdMissing,
			wantInErr: []string{"apt-get install -y etcd-server", "kube-apiserver not found", "tools/kube/build.sh"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := map[string]string{"CAUSEWAY_KUBE_BIN": tt.dir}
			got, err := findBinaries(func(k string) string { return env[k] }, tt.etcd, t.TempDir(), tt.withKCM)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("findBinaries (-want +got):\n%s", diff)
			}
			if len(tt.wantInErr) == 0 {
				if err != nil {
					t.Errorf("findBinaries: unexpected error %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("findBinaries: no error, want one holding %q", tt.wantInErr)
			}
			for _, s := range tt.wantInErr {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("findBinaries error %q does not hold %q", err, s)
				}
			}
		})
	}
}

func TestFindEtcd(t *testing.T) {
	repo := t.TempDir()
	writeTree(t, repo, map[string]string{
		"go.mod":            "module " + rootModule + "\n\ngo 1.26.0\n",
		"tools/etcd/go.mod": "module " + rootModule + "/tools/etcd\n\nrequire " + etcdModule + " v3.6.16\n",
	})
	cache := t.TempDir()
	writeTree(t, cache, map[string]string{"v3.6.16/etcd": "#!/bin/sh\n"})
	built := filepath.Join(cache, "v3.6.16", "etcd")
	binDirFull := t.TempDir()
	writeTree(t, binDirFull, map[string]string{"etcd": "#!/bin/sh\n"})
	onPath := func() (string, error) { return "/usr/bin/etcd", nil }
	missing := func() (string, error) { return "", errors.New("not found") }

	tests := []struct {
		name      string
		env       map[string]string
		wd        string
		look      func() (string, error)
		want      string
		wantInErr string
	}{
		{name: "pinned build beats PATH", env: map[string]string{"CAUSEWAY_ETCD_CACHE": cache}, wd: repo, look: onPath, want: built},
		{name: "CAUSEWAY_ETCD_BIN beats the cache", env: map[string]string{"CAUSEWAY_ETCD_BIN": binDirFull, "CAUSEWAY_ETCD_CACHE": cache}, wd: repo, look: onPath, want: filepath.Join(binDirFull, "etcd")},
		{name: "not built: PATH", env: map[string]string{"CAUSEWAY_ETCD_CACHE": t.TempDir()}, wd: repo, look: onPath, want: "/usr/bin/etcd"},
		{name: "outside the repository: PATH", env: map[string]string{"HOME": "/home/u"}, wd: t.TempDir(), look: onPath, want: "/usr/bin/etcd"},
		{name: "CAUSEWAY_ETCD_BIN empty: no fallback", env: map[string]string{"CAUSEWAY_ETCD_BIN": t.TempDir()}, wd: repo, look: onPath, wantInErr: "CAUSEWAY_ETCD_BIN"},
		{name: "nowhere", env: map[string]string{"CAUSEWAY_ETCD_CACHE": t.TempDir()}, wd: repo, look: missing, wantInErr: "tools/etcd/build.sh"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := findEtcd(func(k string) string { return tt.env[k] }, tt.look, tt.wd)
			if tt.wantInErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantInErr) {
					t.Fatalf("findEtcd = %q, %v; want an error holding %q", got, err, tt.wantInErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("findEtcd = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}
