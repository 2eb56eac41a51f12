package bench

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
)

// clockTicks is USER_HZ, the unit of utime and stime in /proc/PID/stat: 100
// on every Linux architecture Go supports (the kernel fixes it for user
// space whatever its internal HZ).
const clockTicks = 100

// ProcStats is what /proc says about a process.
type ProcStats struct {
	// CPUSeconds is user plus system time (/proc/PID/stat utime+stime).
	CPUSeconds float64 `json:"cpu_seconds"`
	// RSSBytes is the resident set now (VmRSS); PeakRSSBytes the highest it
	// has been (VmHWM).
	RSSBytes     int64 `json:"rss_bytes"`
	PeakRSSBytes int64 `json:"peak_rss_bytes"`
}

// readProcStats reads the CPU time and memory of process pid.
func readProcStats(pid int) (ProcStats, error) {
	dir := "/proc/" + strconv.Itoa(pid)
	stat, err := os.ReadFile(dir + "/stat")
	if err != nil {
		return ProcStats{}, fmt.Errorf("read CPU time of process %d: %w", pid, err)
	}
	status, err := os.ReadFile(dir + "/status")
	if err != nil {
		return ProcStats{}, fmt.Errorf("read memory of process %d: %w", pid, err)
	}
	ticks, err := parseStatCPU(stat)
	if err != nil {
		return ProcStats{}, fmt.Errorf("process %d: %w", pid, err)
	}
	rss, hwm, err := parseStatusMemory(status)
	if err != nil {
		return ProcStats{}, fmt.Errorf("process %d: %w", pid, err)
	}
	return ProcStats{CPUSeconds: float64(ticks) / clockTicks, RSSBytes: rss, PeakRSSBytes: hwm}, nil
}

// parseStatCPU returns utime+stime, in clock ticks, of a /proc/PID/stat
// line. The command name (field 2) is in parentheses and may hold spaces
// and parentheses itself, so fields are counted after its last ')'.
func parseStatCPU(stat []byte) (uint64, error) {
	end := bytes.LastIndexByte(stat, ')')
	if end < 0 {
		return 0, errors.New("/proc stat: no command name")
	}
	// After ")": field 3 (state) is the first; utime and stime are fields
	// 14 and 15.
	fields := strings.Fields(string(stat[end+1:]))
	const utime, stime = 14 - 3, 15 - 3
	if len(fields) <= stime {
		return 0, fmt.Errorf("/proc stat: %d fields after the command name, want more than %d", len(fields), stime)
	}
	u, err := strconv.ParseUint(fields[utime], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("/proc stat: utime %q: %w", fields[utime], err)
	}
	s, err := strconv.ParseUint(fields[stime], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("/proc stat: stime %q: %w", fields[stime], err)
	}
	return u + s, nil
}

// parseStatusMemory returns VmRSS and VmHWM, in bytes, of /proc/PID/status.
func parseStatusMemory(status []byte) (rss, hwm int64, err error) {
	var haveRSS, haveHWM bool
	sc := bufio.NewScanner(bytes.NewReader(status))
	for sc.Scan() {
		key, val, ok := strings.Cut(sc.Text(), ":")
		if !ok || (key != "VmRSS" && key != "VmHWM") {
			continue
		}
		n, err := parseKB(val)
		if err != nil {
			return 0, 0, fmt.Errorf("/proc status %s: %w", key, err)
		}
		if key == "VmRSS" {
			rss, haveRSS = n, true
		} else {
			hwm, haveHWM = n, true
		}
	}
	if !haveRSS || !haveHWM {
		return 0, 0, errors.New("/proc status: no VmRSS or VmHWM line (is the process a zombie?)")
	}
	return rss, hwm, nil
}

// parseKB parses "   1234 kB" into bytes.
func parseKB(s string) (int64, error) {
	num, unit, _ := strings.Cut(strings.TrimSpace(s), " ")
	if unit != "kB" {
		return 0, fmt.Errorf("%q: want a number of kB", s)
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%q: %w", s, err)
	}
	return n << 10, nil
}

// selfCPU is this process's CPU time in seconds, or 0 when unreadable.
func selfCPU() float64 {
	st, err := readProcStats(os.Getpid())
	if err != nil {
		return 0
	}
	return st.CPUSeconds
}

// Machine describes where a run ran.
type Machine struct {
	Cores       int     `json:"cores"`
	MemoryBytes int64   `json:"memory_bytes"`
	CPUModel    string  `json:"cpu_model,omitempty"`
	Kernel      string  `json:"kernel,omitempty"`
	GoVersion   string  `json:"go_version"`
	LoadBefore  float64 `json:"load1_before"`
	LoadAfter   float64 `json:"load1_after"`
}

// readMachine reads the machine's cores, memory, CPU model, kernel and
// one-minute load average; what cannot be read stays zero.
func readMachine() Machine {
	m := Machine{Cores: runtime.NumCPU(), GoVersion: runtime.Version(), LoadBefore: loadAverage()}
	if data, err := os.ReadFile("/proc/meminfo"); err == nil {
		for line := range strings.Lines(string(data)) {
			if v, ok := strings.CutPrefix(line, "MemTotal:"); ok {
				m.MemoryBytes, _ = parseKB(v)
			}
		}
	}
	if data, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.Lines(string(data)) {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPUModel = strings.TrimSpace(v)
				break
			}
		}
	}
	if data, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(data))
	}
	return m
}

// loadAverage is the one-minute load average, or 0 when unreadable.
func loadAverage() float64 {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0
	}
	f, _, _ := strings.Cut(string(data), " ")
	v, _ := strconv.ParseFloat(f, 64)
	return v
}
