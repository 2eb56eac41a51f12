package cli

import (
	"io/fs"
	"testing"
)

func TestMemoryLimit(t *testing.T) {
	noEnv := func(string) string { return "" }
	file := func(content string) func(string) ([]byte, error) {
		return func(string) ([]byte, error) { return []byte(content), nil }
	}
	missing := func(string) ([]byte, error) { return nil, fs.ErrNotExist }
	for _, tc := range []struct {
		name    string
		flag    string
		env     string
		read    func(string) ([]byte, error)
		want    int64
		wantErr bool
	}{
		{name: "auto with a cgroup limit", flag: "auto", read: file("1073741824\n"), want: 966367641},
		{name: "auto without limit", flag: "auto", read: file("max\n"), want: 0},
		{name: "auto without cgroup v2", flag: "auto", read: missing, want: 0},
		{name: "auto leaves GOMEMLIMIT alone", flag: "auto", env: "300MiB", read: file("1073741824"), want: 0},
		{name: "auto with garbage in the cgroup", flag: "auto", read: file("lots"), wantErr: true},
		{name: "explicit", flag: "512Mi", read: missing, want: 512 << 20},
		{name: "explicit decimal", flag: "1G", read: missing, want: 1_000_000_000},
		{name: "none", flag: "none", read: file("1073741824"), want: 0},
		{name: "zero", flag: "0", read: file("1073741824"), want: 0},
		{name: "negative", flag: "-5Mi", read: missing, wantErr: true},
		{name: "not a size", flag: "big", read: missing, wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			getenv := noEnv
			if tc.env != "" {
				getenv = func(k string) string {
					if k == "GOMEMLIMIT" {
						return tc.env
					}
					return ""
				}
			}
			got, _, err := memoryLimit(tc.flag, getenv, tc.read)
			if (err != nil) != tc.wantErr {
				t.Fatalf("err %v, want error %v", err, tc.wantErr)
			}
			if got != tc.want {
				t.Errorf("limit %d, want %d", got, tc.want)
			}
		})
	}
}
