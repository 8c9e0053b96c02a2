package main

import (
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
	o := options{mib: 4, rssFactor: 2, wideTopics: 4, wideMiB: 4, ctrlBackups: 20, ctrlNS: 4, ctrlSteady: 5 * time.Second, codecs: "zstd,lz4,none",
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
		"## Backup of a 4 MiB topic", "→ volume (zstd)", "→ volume (lz4)", "→ volume (none)", "→ gcs (zstd)",
		"### While records flow", "→ volume on tmpfs (none) |",
		"## Restore of that backup", "armory worker --restore",
		"## Memory does not grow with the topic", "Peak RSS ratio",
		"## A wide backup: 4 topics × 3 partitions", "none missing or repeated",
		"## The controller with 20 Backups",
	} {
		if !strings.Contains(report, want) {
			t.Errorf("the report has no %q:\n%s", want, report)
		}
	}
	if o.kcat && !strings.Contains(report, "kcat -C > /dev/null (baseline)") {
		t.Errorf("kcat is installed but the report has no kcat baseline:\n%s", report)
	}
}
