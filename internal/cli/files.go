package cli

import (
	"errors"
	"io/fs"

	"k8s.io/client-go/tools/clientcmd"

	"github.com/causeway-mesh/causeway/internal/files"
)

// checkKubeconfigFiles refuses, before client-go reads them, kubeconfig
// files that are not regular files or exceed files.Kubeconfig's limit:
// client-go reads a kubeconfig whole and would hang on a FIFO or fill
// memory from /dev/zero. Missing files of $KUBECONFIG are client-go's to
// report (or skip), as kubectl does.
func checkKubeconfigFiles(rules *clientcmd.ClientConfigLoadingRules) error {
	paths := rules.Precedence
	if rules.ExplicitPath != "" {
		paths = []string{rules.ExplicitPath}
	}
	for _, p := range paths {
		if err := files.Check(p, files.Kubeconfig); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	return nil
}
