package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestChaosRunsAtASmallSize runs every scenario of make chaos once, small:
// a few kills of the backup and of the restore worker, three Lease handovers, a few seconds of storage faults, one SIGTERM while uploads
// hang. It fails as make chaos does,
// on a record lost, duplicated or changed, an object left over, or a fault
// that never happened.
func TestChaosRunsAtASmallSize(t *testing.T) {
	if testing.Short() {
		t.Skip("starts an API server, Kafka clusters and a dozen workers")
	}
	out := filepath.Join(t.TempDir(), "RELIABILITY.md")
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d (replay: go run ./scripts/chaos -seed %d)", seed, seed)
	o := options{seed: seed, kills: 4, restoreKills: 3, restoreBatches: 100, handovers: 3, batches: 400, batchSize: 20, faultRate: 0.2, stall: time.Second, storageFor: 8 * time.Second, kafkaFor: 8 * time.Second, volumeFor: 6 * time.Second, outage: 12 * time.Second, out: out}
	rows, err := run(o)
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 8 {
		t.Fatalf("%d scenarios ran, want 8", len(rows))
	}
	for _, r := range rows {
		if !r.passed() {
			t.Errorf("%s: %s (leftovers %v)", r.scenario, r.summary(), r.leftovers)
		}
	}
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"| kill storm |", "| restore kill storm |", "| Kafka faults |", "| volume faults |", "| API-server outage |", "the Backup's status was right again in", "read-only remount: the stream's status message was", "restore: REQUEST_TIMED_OUT on produce, after the write", "restore worker SIGKILL 3", "| Lease handover |", "handover 3", "| storage faults (GCS) |", "| SIGTERM during a stalled upload |", "SIGKILL 4", "answer lost after the call", "## What Armory promises"} {
		if !strings.Contains(string(data), want) {
			t.Errorf("the report has no %q:\n%s", want, data)
		}
	}
}
