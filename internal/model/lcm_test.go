package model

import "testing"

func TestLCMAndGCD(t *testing.T) {
	tests := []struct {
		a, b     uint64
		lcm, gcd uint64
	}{
		{0, 0, 0, 0},
		{0, 3, 3, 3},
		{3, 0, 3, 3},
		{1, 1, 1, 1},
		{4, 6, 12, 2},
		{6, 4, 12, 2},
		{3, 5, 15, 1},
		{12, 12, 12, 12},
		{1 << 31, 3, 3 << 31, 1},
	}
	for _, tt := range tests {
		if got := LCM(tt.a, tt.b); got != tt.lcm {
			t.Errorf("LCM(%d, %d) = %d, want %d", tt.a, tt.b, got, tt.lcm)
		}
		if got := GCD(tt.a, tt.b); got != tt.gcd {
			t.Errorf("GCD(%d, %d) = %d, want %d", tt.a, tt.b, got, tt.gcd)
		}
		if got := LCM(int(tt.a), int(tt.b)); got != int(tt.lcm) {
			t.Errorf("LCM[int](%d, %d) = %d, want %d", tt.a, tt.b, got, tt.lcm)
		}
	}
}
