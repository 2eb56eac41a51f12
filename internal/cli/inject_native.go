package cli

import (
	"fmt"
	"strconv"

	"github.com/spf13/pflag"

	"github.com/causeway-mesh/causeway/internal/inject"
)

// nativeAuto is --native-sidecars=auto, the default.
const nativeAuto = "auto"

// nativeFlag is --native-sidecars: auto, or a boolean. It was a boolean
// flag, so a bare --native-sidecars still means true and every spelling
// strconv.ParseBool reads is accepted.
type nativeFlag struct {
	// auto decides per cluster; else on.
	auto bool
	on   bool
}

func (f *nativeFlag) register(fl *pflag.FlagSet) {
	f.auto = true
	v := fl.VarPF(f, "native-sidecars", "", "inject istio-proxy as a Kubernetes native sidecar (an init container with restartPolicy Always): "+
		"auto (as istiod's default ENABLE_NATIVE_SIDECARS=auto: for a pod of a cluster whose Nodes all have a kubelet of 1.33 or newer, "+
		"or, when the pod names its node, whose node has; a cluster with no Nodes too), true (always; kubelets of 1.29 or newer), or false (never). "+
		"A pod's sidecar.istio.io/nativeSidecar annotation overrides it. See docs/injection.md")
	v.NoOptDefVal = "true"
}

// String, Set and Type make nativeFlag a pflag.Value.
func (f *nativeFlag) String() string {
	if f.auto {
		return nativeAuto
	}
	return strconv.FormatBool(f.on)
}

func (f *nativeFlag) Set(s string) error {
	if s == nativeAuto {
		f.auto, f.on = true, false
		return nil
	}
	on, err := strconv.ParseBool(s)
	if err != nil {
		return fmt.Errorf("want auto, true or false, got %q", s)
	}
	f.auto, f.on = false, on
	return nil
}

func (f *nativeFlag) Type() string { return "auto|true|false" }

func (f *nativeFlag) apply(ic *inject.Config) {
	ic.NativeSidecarsAuto = f.auto
	ic.NativeSidecars = f.on
}
