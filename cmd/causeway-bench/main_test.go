package main

import (
	"flag"
	"io"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestFloatListFlag(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		want    []float64
		wantErr bool
	}{
		{name: "default kept", want: []float64{10, 100}},
		{name: "a list replaces the default", args: []string{"-rate", "5,50"}, want: []float64{5, 50}},
		{name: "repeated", args: []string{"-rate", "1", "-rate=2.5"}, want: []float64{1, 2.5}},
		{name: "list and repeat", args: []string{"-rate", "1, 2", "-rate", "3"}, want: []float64{1, 2, 3}},
		{name: "not a number", args: []string{"-rate", "fast"}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := floatList{vals: []float64{10, 100}}
			fs := flag.NewFlagSet("t", flag.ContinueOnError)
			fs.SetOutput(io.Discard)
			fs.Var(&l, "rate", "")
			err := fs.Parse(tt.args)
			if (err != nil) != tt.wantErr {
				t.Fatalf("parse %q: error %v, want error %t", tt.args, err, tt.wantErr)
			}
			if tt.wantErr {
				return
			}
			if diff := cmp.Diff(tt.want, l.vals); diff != "" {
				t.Errorf("rates (-want +got):\n%s", diff)
			}
		})
	}
	ints := intList{floatList{vals: []float64{100, 1000}}}
	if diff := cmp.Diff([]int{100, 1000}, ints.ints()); diff != "" {
		t.Errorf("ints (-want +got):\n%s", diff)
	}
}
