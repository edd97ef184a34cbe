package benchkit

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Reading the kernel's accounting of the servers under test from /proc.

// ProcStat holds the fields of /proc/PID/stat the benchmark uses.
type ProcStat struct {
	PPID  int
	Ticks uint64 // utime + stime of all threads, in clock ticks
}

// ParseStat parses the content of /proc/PID/stat. The command name is in
// parentheses and may itself contain spaces and parentheses, so the fields
// are counted from the last ')'.
func ParseStat(b []byte) (ProcStat, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return ProcStat{}, errors.New("stat: no command name")
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state); ppid is field 4, utime 14, stime 15.
	if len(f) < 13 {
		return ProcStat{}, fmt.Errorf("stat: %d fields after command name", len(f))
	}
	ppid, err := strconv.Atoi(f[1])
	if err != nil {
		return ProcStat{}, fmt.Errorf("stat ppid: %w", err)
	}
	ut, err := strconv.ParseUint(f[11], 10, 64)
	if err != nil {
		return ProcStat{}, fmt.Errorf("stat utime: %w", err)
	}
	st, err := strconv.ParseUint(f[12], 10, 64)
	if err != nil {
		return ProcStat{}, fmt.Errorf("stat stime: %w", err)
	}
	return ProcStat{PPID: ppid, Ticks: ut + st}, nil
}

// ReadStat reads /proc/PID/stat.
func ReadStat(pid int) (ProcStat, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return ProcStat{}, err
	}
	return ParseStat(b)
}

// ProcessTree returns root and all its live descendants, root first. NSD
// for instance runs as xfrd (the process we started), main and server
// processes in a chain of forks.
func ProcessTree(root int) []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return []int{root}
	}
	children := map[int][]int{}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		st, err := ReadStat(pid)
		if err != nil {
			continue // exited meanwhile
		}
		children[st.PPID] = append(children[st.PPID], pid)
	}
	tree := []int{root}
	for i := 0; i < len(tree); i++ {
		tree = append(tree, children[tree[i]]...)
	}
	return tree
}

// MemInfo is a process's memory figures in KiB.
type MemInfo struct {
	HWM uint64 // VmHWM: peak resident set size
	RSS uint64 // VmRSS
	PSS uint64 // Pss from smaps_rollup: resident pages, shared ones divided among their users
}

// ParseStatusKB returns the value in KiB of key in the content of
// /proc/PID/status or smaps_rollup ("VmRSS:   1000 kB").
func ParseStatusKB(b []byte, key string) (uint64, bool) {
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok || k != key {
			continue
		}
		v = strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB"))
		n, err := strconv.ParseUint(v, 10, 64)
		return n, err == nil
	}
	return 0, false
}

// ReadMem reads the memory figures of pid; PSS only when withPSS, because
// reading smaps_rollup walks the page tables under the process's mmap lock
// (about 12 ms for 400 MB), which stalls a loading server's mmap calls.
func ReadMem(pid int, withPSS bool) (MemInfo, error) {
	dir := filepath.Join("/proc", strconv.Itoa(pid))
	st, err := os.ReadFile(filepath.Join(dir, "status"))
	if err != nil {
		return MemInfo{}, err
	}
	var m MemInfo
	m.HWM, _ = ParseStatusKB(st, "VmHWM")
	m.RSS, _ = ParseStatusKB(st, "VmRSS")
	if !withPSS {
		return m, nil
	}
	if sr, err := os.ReadFile(filepath.Join(dir, "smaps_rollup")); err == nil {
		m.PSS, _ = ParseStatusKB(sr, "Pss")
	}
	return m, nil
}
