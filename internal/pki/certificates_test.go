package pki

import (
	"bytes"
	"testing"
)

func TestCertificates(t *testing.T) {
	rootCert, rootKey := testRoot(t, RootOptions{})
	b := testIntermediate(t, rootCert, rootKey, "cluster1")
	bad := []byte("-----BEGIN CERTIFICATE-----\nMAA=\n-----END CERTIFICATE-----\n")

	// Keys between certificates are skipped; order is kept.
	var subjects []string
	for c, err := range Certificates(bytes.Join([][]byte{rootKey, b.CACert, rootKey, rootCert}, nil)) {
		if err != nil {
			t.Fatal(err)
		}
		subjects = append(subjects, c.Subject.CommonName)
	}
	want := []string{mustParse(t, b.CACert).Subject.CommonName, mustParse(t, rootCert).Subject.CommonName}
	if len(subjects) != 2 || subjects[0] != want[0] || subjects[1] != want[1] {
		t.Errorf("certificates %q, want %q", subjects, want)
	}

	// A bad block ends the sequence with its error.
	var got []error
	for c, err := range Certificates(bytes.Join([][]byte{rootCert, bad, rootCert}, nil)) {
		if (c == nil) == (err == nil) {
			t.Fatalf("certificate %v with error %v: want exactly one", c, err)
		}
		got = append(got, err)
	}
	if len(got) != 2 || got[0] != nil || got[1] == nil {
		t.Errorf("errors %v, want nil then a parse error, then nothing", got)
	}

	// No certificate: nothing yielded.
	for c, err := range Certificates(rootKey) {
		t.Errorf("key only: yielded %v, %v", c, err)
	}

	// The caller may stop early.
	n := 0
	for _, err := range Certificates(bytes.Join([][]byte{rootCert, rootCert, rootCert}, nil)) {
		if err != nil {
			t.Fatal(err)
		}
		n++
		break
	}
	if n != 1 {
		t.Errorf("stopped after %d, want 1", n)
	}
}
