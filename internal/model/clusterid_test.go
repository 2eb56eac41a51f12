package model

import "testing"

func TestCheckClusterID(t *testing.T) {
	for _, ok := range []string{"cluster1", "c", "Kind-Home_1.a", "1"} {
		if err := CheckClusterID(ok); err != nil {
			t.Errorf("CheckClusterID(%q) = %v, want ok", ok, err)
		}
	}
	long := make([]byte, MaxClusterIDLength+1)
	for i := range long {
		long[i] = 'a'
	}
	for _, bad := range []string{"", "cluster1.", ".cluster1", "..", ".", "a/b", "a b", "-a", "a_", string(long)} {
		if err := CheckClusterID(bad); err == nil {
			t.Errorf("CheckClusterID(%q) = nil, want an error", bad)
		}
	}
}
