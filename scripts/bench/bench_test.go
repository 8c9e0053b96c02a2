package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestBenchRunsAtATinySize runs every scenario of make bench once, at a tiny
// size, so that the benchmark cannot rot: the workers back up and restore,
// the wide backup's records are each stored exactly once, and the report
// has every section. (The kcat baselines are left out when kcat is not
// installed; the worker parts never are.)
func TestBenchRunsAtATinySize(t *testing.T) {
	if testing.Short() {
		t.Skip("starts an API server and runs a dozen workers")
	}
	_, err := exec.LookPath("kcat")
	out := filepath.Join(t.TempDir(), "BENCHMARKS.md")
	o := options{mib: 4, rssFactor: 2, wideTopics: 4, wideMiB: 4, ctrlBackups: 20, ctrlNS: 4, ctrlSteady: 5 * time.Second, codecs: "zstd,zstd-fastest,lz4,none",
		out: out, kcat: err == nil}
	if err := run(o); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	report := string(data)
	for _, want := range []string{
		"## Backup of a 4 MiB topic", "→ volume (zstd)", "→ volume (zstd, level fastest)", "→ volume (lz4)", "→ volume (none)", "→ gcs (zstd)",
		"### While records flow",
		"## Restore of that backup", "armory worker --restore", "### Where the restore's CPU goes",
		"## Memory does not grow with the topic", "Peak RSS ratio",
		"## A wide backup: 4 topics × 3 partitions", "none missing or repeated",
		"## The controller with 20 Backups",
	} {
		if !strings.Contains(report, want) {
			t.Errorf("the report has no %q:\n%s", want, report)
		}
	}
	// The two backups at the default budget, each beside docs/worker.md's
	// bound, and within it unless the worker is built with the race
	// detector (ARMORY_TEST_RACE=1, as make test does), whose shadow
	// memory the bound does not count.
	if n := strings.Count(report, "docs/worker.md's bound at the default budget"); n != 2 {
		t.Errorf("the report compares %d peaks with docs/worker.md's bound, want 2:\n%s", n, report)
	}
	if os.Getenv("ARMORY_TEST_RACE") != "1" && strings.Contains(report, "is over it by") {
		t.Errorf("a peak RSS is over docs/worker.md's bound:\n%s", report)
	}
	if o.kcat && !strings.Contains(report, "kcat -C > /dev/null (baseline)") {
		t.Errorf("kcat is installed but the report has no kcat baseline:\n%s", report)
	}
}

// TestFlowRate: the rate while records flow leaves out the first segment's
// bytes (its reading began before the window) and each partition's last.
func TestFlowRate(t *testing.T) {
	line := func(at string, partition, bytes int) string {
		return fmt.Sprintf(`I1202 %s   31439 partition.go:433] "Uploaded segment" backup="ns/b" topic="bench.events" partition=%d object="x" records=10 offsets="0-9" bytes=%d compressed=5 took="1ms"`,
			at, partition, bytes)
	}
	log := strings.Join([]string{
		`I1202 14:18:10.100000   31439 backup.go:348] "Stream started"`,
		line("14:18:10.000000", 0, 1_000_000), // the window opens: not counted
		line("14:18:10.500000", 1, 2_000_000),
		line("14:18:11.000000", 0, 2_000_000),
		line("14:18:11.000000", 1, 9),   // partition 1's last: left out
		line("14:18:12.500000", 0, 500), // partition 0's last: left out
	}, "\n")
	if got := flowRate([]byte(log)); got != 4 { // 4 MB in 1 s
		t.Errorf("flowRate = %v MB/s, want 4", got)
	}
	if got := flowRate([]byte(line("14:18:10.000000", 0, 5))); got != 0 {
		t.Errorf("flowRate of one segment = %v, want 0 (unknown)", got)
	}
}
