package main

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
)

// A CPU profile says where a worker's CPU goes; a backup that is not short
// of CPU (none, on 2 cores) is held by what its goroutines wait for. An
// execution trace says that: `go tool trace -pprof=KIND` turns it into a
// profile of delays by stack, summed over goroutines: sync (blocked on
// channels, selects, locks), syscall (in system calls), sched (ready to
// run, without a core).

// waitPart is what some goroutines waited for: the cumulative delay of
// function in the trace's kind profile (without the stacks that do not
// match focus, if set), shared out over each of them.
type waitPart struct {
	who, what string
	kind      string
	function  string
	focus     string
	each      bool // per partition, not summed
}

// backupWaits are a backup's waits, by the functions standing for them.
var backupWaits = []waitPart{
	{"each partition's goroutine", "records from sarama (its `fill` blocked on the consumer's channel)", "sync",
		"worker.(*partitionBackup).fill", "", true},
	{"each partition's goroutine", "the previous segment's upload, before handing the next over (`segmentUpload.wait`)", "sync",
		"worker.(*segmentUpload).wait", "", true},
	{"each partition's goroutine", "a core, ready to run", "sched", "worker.(*partitionBackup).runOnce", "", true},
	{"each partition's uploads", "the disk: writing segments and fsyncing (system calls)", "syscall",
		"worker.(*partitionBackup).upload", "", true},
	{"sarama's fetch loop, each partition's broker", "Kafka's fetch responses", "sync",
		"sarama.(*brokerConsumer).fetchNewMessages", "", true},
	{"sarama's fetch loop, each partition's broker", "the partition to take the fetch's records into its channel before the next fetch", "sync",
		"sync.(*WaitGroup).Wait", "sarama.\\(\\*brokerConsumer\\).subscriptionConsumer", true},
	{"all sarama's goroutines, summed", "a core, ready to run", "sched", "sarama.withRecover", "", false},
}

// waitSummary tells, from the execution trace of a backup of parts
// partitions that ran seconds, what its goroutines waited for, as a table.
// Here each partition leads on a broker of its own, so sarama runs one
// fetch loop per partition.
func waitSummary(trace string, parts int, seconds float64, waits []waitPart) (string, error) {
	profiles := map[string]string{}
	for _, w := range waits {
		if _, ok := profiles[w.kind]; ok {
			continue
		}
		out, err := exec.Command("go", "tool", "trace", "-pprof="+w.kind, trace).Output()
		if err != nil {
			return "", fmt.Errorf("go tool trace -pprof=%s %s: %w", w.kind, trace, err)
		}
		file := trace + "." + w.kind + ".pprof"
		if err := os.WriteFile(file, out, 0o644); err != nil {
			return "", err
		}
		profiles[w.kind] = file
	}
	var b strings.Builder
	b.WriteString("| goroutines | waiting for | seconds | of the run |\n|---|---|---|---|\n")
	// Several parts read the same profile with the same flags: pprof runs
	// once for each pair.
	type query struct{ kind, focus string }
	cums := map[query]map[string]float64{}
	for _, w := range waits {
		q := query{w.kind, w.focus}
		cum, ok := cums[q]
		if !ok {
			var args []string
			if w.focus != "" {
				args = []string{"-focus=" + w.focus}
			}
			var err error
			if cum, _, err = cumulativeSeconds(profiles[w.kind], args...); err != nil {
				return "", err
			}
			cums[q] = cum
		}
		var s float64
		for name, c := range cum {
			if strings.HasSuffix(name, w.function) {
				s += c
			}
		}
		if w.each {
			s /= float64(parts)
		}
		fmt.Fprintf(&b, "| %s | %s | %.2f | %.0f%% |\n", w.who, w.what, s, 100*s/seconds)
	}
	return b.String(), nil
}
