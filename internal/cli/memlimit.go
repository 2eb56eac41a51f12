package cli

import (
	"errors"
	"fmt"
	"os"
	"runtime/debug"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/api/resource"
)

// cgroupMemoryMax is where cgroup v2 publishes a container's memory limit.
const cgroupMemoryMax = "/sys/fs/cgroup/memory.max"

// memoryLimitAuto is the share of the container's memory limit that
// --memory-limit=auto gives the Go runtime: the rest is for what the
// runtime does not count (stacks of the OS, cgo, fragmentation).
const memoryLimitAuto = 0.9

// memoryLimit resolves --memory-limit: "auto" (90% of the cgroup's
// memory.max when there is one, else none), "0" or "none" (no limit), or a
// Kubernetes quantity (512Mi, 1G). The GOMEMLIMIT environment variable,
// when set, wins over "auto". It returns the limit in bytes (0: none) and
// where it came from, for the log.
func memoryLimit(flag string, getenv func(string) string, readFile func(string) ([]byte, error)) (int64, string, error) {
	switch strings.ToLower(strings.TrimSpace(flag)) {
	case "", "auto":
		if env := getenv("GOMEMLIMIT"); env != "" {
			return 0, "GOMEMLIMIT=" + env, nil // the runtime already applied it
		}
		b, err := readFile(cgroupMemoryMax)
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return 0, "no cgroup memory limit", nil
			}
			return 0, "", fmt.Errorf("--memory-limit=auto: read %s: %w", cgroupMemoryMax, err)
		}
		v := strings.TrimSpace(string(b))
		if v == "max" || v == "" {
			return 0, "no cgroup memory limit", nil
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n <= 0 {
			return 0, "", fmt.Errorf("--memory-limit=auto: %s holds %q, not a number of bytes; give --memory-limit explicitly", cgroupMemoryMax, v)
		}
		return int64(float64(n) * memoryLimitAuto), "90% of the cgroup memory limit " + strconv.FormatInt(n, 10), nil
	case "0", "none":
		return 0, "none", nil
	}
	q, err := resource.ParseQuantity(flag)
	if err != nil {
		return 0, "", fmt.Errorf("--memory-limit %q: want auto, none, or a size such as 512Mi or 2Gi", flag)
	}
	if q.Sign() <= 0 {
		return 0, "", fmt.Errorf("--memory-limit %q: want a positive size (or none)", flag)
	}
	return q.Value(), "--memory-limit", nil
}

// applyMemoryLimit sets the Go runtime's soft memory limit: the garbage
// collector works harder as the heap nears it instead of letting the heap
// double, which keeps a control plane inside its container's limit.
func applyMemoryLimit(n int64) {
	if n > 0 {
		debug.SetMemoryLimit(n)
	}
}
