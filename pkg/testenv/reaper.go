package testenv

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// A test binary that dies without stopping its API server (a panic, a
// SIGKILL) leaves kube-apiserver and etcd running. Each Start records the
// PIDs of the servers it started, under its own PID; the next Start stops
// the servers of owners that are gone. Only processes this package started,
// still running the cached binaries, are ever signalled.

func reaperDir(assets string) string { return filepath.Join(assets, "running") }

// recordServers notes the kube-apiserver and etcd children of this process.
func recordServers(assets string) {
	var pids []string
	for _, pid := range childPIDs(os.Getpid()) {
		if isOurServer(pid, assets) {
			pids = append(pids, strconv.Itoa(pid))
		}
	}
	dir := reaperDir(assets)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return
	}
	_ = os.WriteFile(filepath.Join(dir, strconv.Itoa(os.Getpid())), []byte(strings.Join(pids, "\n")), 0o644)
}

// forgetServers drops this process's record after a clean stop.
func forgetServers(assets string) {
	_ = os.Remove(filepath.Join(reaperDir(assets), strconv.Itoa(os.Getpid())))
}

// reapOrphans stops the servers recorded by test processes that no longer run.
func reapOrphans(assets string) {
	entries, err := os.ReadDir(reaperDir(assets))
	if err != nil {
		return
	}
	for _, e := range entries {
		owner, err := strconv.Atoi(e.Name())
		if err != nil || owner == os.Getpid() || alive(owner) {
			continue
		}
		path := filepath.Join(reaperDir(assets), e.Name())
		data, _ := os.ReadFile(path)
		var pids []int
		for _, field := range strings.Fields(string(data)) {
			if pid, err := strconv.Atoi(field); err == nil && isOurServer(pid, assets) {
				fmt.Fprintf(os.Stderr, "testenv: stopping %s (PID %d) left by test process %d\n", serverName(pid), pid, owner)
				_ = syscall.Kill(pid, syscall.SIGTERM)
				pids = append(pids, pid)
			}
		}
		// kube-apiserver can linger after SIGTERM: give them 15 s together,
		// then SIGKILL.
		for i := 0; i < 150 && anyRunning(pids, assets); i++ {
			time.Sleep(100 * time.Millisecond)
		}
		for _, pid := range pids {
			if isOurServer(pid, assets) {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
		_ = os.Remove(path)
	}
}

func anyRunning(pids []int, assets string) bool {
	for _, pid := range pids {
		if isOurServer(pid, assets) {
			return true
		}
	}
	return false
}

func alive(pid int) bool { return syscall.Kill(pid, 0) == nil }

// isOurServer: pid runs kube-apiserver or etcd from the asset folder.
func isOurServer(pid int, assets string) bool {
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return false
	}
	exe := strings.SplitN(string(cmdline), "\x00", 2)[0]
	return exe == filepath.Join(assets, "kube-apiserver") || exe == filepath.Join(assets, "etcd")
}

func serverName(pid int) string {
	cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	return filepath.Base(strings.SplitN(string(cmdline), "\x00", 2)[0])
}

// childPIDs lists the processes whose parent is ppid.
func childPIDs(ppid int) []int {
	entries, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces, so split after ')'.
		s := string(stat)
		fields := strings.Fields(s[strings.LastIndex(s, ")")+1:])
		if len(fields) > 1 {
			if p, err := strconv.Atoi(fields[1]); err == nil && p == ppid {
				out = append(out, pid)
			}
		}
	}
	return out
}

// ServerPIDs returns the PIDs of the kube-apiserver and etcd this Env runs.
func (e *Env) ServerPIDs() []int {
	var out []int
	for _, pid := range childPIDs(os.Getpid()) {
		if isOurServer(pid, e.assets) {
			out = append(out, pid)
		}
	}
	return out
}
