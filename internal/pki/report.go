package pki

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/causeway-mesh/causeway/internal/files"
)

// Report is what `causeway certs inspect` shows: every certificate of
// each source, chain checks, and checks of Istio plug-in CA bundles found.
type Report struct {
	Sources []Source `json:"sources"`
	// Bundles are the checks of Istio plug-in CA bundles found.
	Bundles []BundleCheck `json:"bundles,omitempty"`
}

// Source is one PEM file or data key.
type Source struct {
	Source       string     `json:"source"`
	Certificates []CertInfo `json:"certificates"`
	// Chain is the check of a chain of several certificates that ends at a
	// self-signed root: "ok" or the problem.
	Chain string `json:"chain,omitempty"`
}

// BundleCheck is the check of a plug-in bundle: "ok" or the problem.
type BundleCheck struct {
	Source string `json:"source"`
	Check  string `json:"check"`
}

// InspectPaths inspects files and folders.
func InspectPaths(ctx context.Context, paths []string) (Report, error) {
	var report Report
	for _, p := range paths {
		fi, err := os.Stat(p)
		if err != nil {
			return Report{}, fmt.Errorf("inspect: %w", err)
		}
		if !fi.IsDir() {
			data, err := files.Read(ctx, p, files.PEM)
			if err != nil {
				return Report{}, fmt.Errorf("inspect: %w", err)
			}
			src, err := inspectPEM(p, data)
			if err != nil {
				return Report{}, fmt.Errorf("%s: %w (is it a key, or not PEM?)", p, err)
			}
			report.Sources = append(report.Sources, src)
			continue
		}
		entries, err := os.ReadDir(p)
		if err != nil {
			return Report{}, fmt.Errorf("inspect: %w", err)
		}
		data := map[string][]byte{}
		for _, e := range entries {
			if e.IsDir() || !strings.HasSuffix(e.Name(), ".pem") {
				continue
			}
			b, err := files.Read(ctx, filepath.Join(p, e.Name()), files.PEM)
			if err != nil {
				return Report{}, fmt.Errorf("inspect: %w", err)
			}
			data[e.Name()] = b
		}
		if len(data) == 0 {
			return Report{}, fmt.Errorf("%s holds no .pem file", p)
		}
		report.AddData(p+string(filepath.Separator), data)
	}
	return report, nil
}

// AddData inspects each key of data that holds certificates, in
// key order, and checks the plug-in bundle when the keys are Istio's.
func (report *Report) AddData(prefix string, data map[string][]byte) {
	keys := make([]string, 0, len(data))
	for k := range data {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		src, err := inspectPEM(prefix+k, data[k])
		if err != nil {
			continue // a key, or not PEM
		}
		report.Sources = append(report.Sources, src)
	}
	if _, ok := data[FileCACert]; !ok {
		return
	}
	if _, ok := data[FileCAKey]; !ok {
		return
	}
	check := "ok"
	if _, err := NewCA(BundleFromData(data)); err != nil {
		check = err.Error() + tornAdvice(prefix, err)
	}
	report.Bundles = append(report.Bundles, BundleCheck{Source: strings.TrimSpace(prefix), Check: check})
}

// inspectPEM describes every certificate of data, and checks it as a
// chain when it holds several ending at a self-signed root.
func inspectPEM(source string, data []byte) (Source, error) {
	infos, err := Inspect(data)
	if err != nil {
		return Source{}, err
	}
	src := Source{Source: source, Certificates: infos}
	if len(infos) > 1 && infos[len(infos)-1].SelfSigned {
		src.Chain = "ok"
		if err := Verify(data, data, VerifyOptions{}); err != nil {
			src.Chain = err.Error()
		}
	} else if len(infos) > 1 {
		src.Chain = chainOrder(infos)
	}
	return src, nil
}

// chainOrder explains a chain of several certificates that does not
// end at a self-signed root: most often one in the wrong order. It returns
// "" when each certificate is issued by the next (a chain that stops below
// its root, which is fine).
func chainOrder(infos []CertInfo) string {
	const fix = "put the leaf (or the intermediate CA) first and each certificate before its issuer, the root last: for cert-chain.pem, ca-cert.pem then root-cert.pem (cat ca-cert.pem root-cert.pem > cert-chain.pem)"
	for i := range infos[:len(infos)-1] {
		if infos[i].SelfSigned {
			return fmt.Sprintf("NOT IN ORDER: the self-signed root is certificate [%d] of %d, not the last; %s", i, len(infos), fix)
		}
	}
	for i := range infos[:len(infos)-1] {
		if infos[i].Issuer != infos[i+1].Subject {
			return fmt.Sprintf("NOT IN ORDER: certificate [%d] is issued by %q, but the next one is %q; %s",
				i, infos[i].Issuer, infos[i+1].Subject, fix)
		}
	}
	return ""
}

// tornAdvice says what to do with a CA bundle whose files do not
// belong together: a key that is not the certificate's, or a chain or root
// of another CA (a write cut short, or files copied from two sets).
func tornAdvice(prefix string, err error) string {
	if !errors.Is(err, ErrKeyMismatch) && !errors.Is(err, ErrChainBroken) {
		return ""
	}
	where := strings.TrimSpace(prefix)
	redo := "causeway certs intermediate --root ROOT --cluster ID --force"
	if dir, ok := strings.CutSuffix(where, string(filepath.Separator)); ok {
		redo += " --out " + dir
	} else {
		redo += " --apply"
	}
	return fmt.Sprintf(" -- THE SET IS TORN: its files come from different CAs; do not plug it in. Restore all four files from one set (a backup, or the cacerts Secret that works), or make a new set: %s", redo)
}

// ReadRoot reads DIR/root-cert.pem and DIR/root-key.pem, bounded, and says
// what to do when either is missing.
func ReadRoot(ctx context.Context, dir string) (certPEM, keyPEM []byte, err error) {
	fi, err := os.Stat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, nil, fmt.Errorf("root folder %s does not exist: make a root first with `causeway certs root --out %s`", dir, dir)
	case err != nil:
		return nil, nil, fmt.Errorf("root folder: %w", err)
	case !fi.IsDir():
		return nil, nil, fmt.Errorf("--root %s is a file: give the folder holding %s and %s", dir, FileRootCert, FileRootKey)
	}
	certPEM, err = files.Read(ctx, filepath.Join(dir, FileRootCert), files.PEM)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil, fmt.Errorf("%s has no %s: make a root with `causeway certs root --out %s`, or point --root at the folder holding %s and %s",
			dir, FileRootCert, dir, FileRootCert, FileRootKey)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("read root certificate: %w", err)
	}
	keyPEM, err = files.Read(ctx, filepath.Join(dir, FileRootKey), files.PEM)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil, fmt.Errorf("%s has %s but no %s: signing an intermediate needs the root's key; copy it back from where it is kept",
			dir, FileRootCert, FileRootKey)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("read root key: %w", err)
	}
	return certPEM, keyPEM, nil
}
