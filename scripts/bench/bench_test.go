package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestBenchRunsAtATinySize runs every scenario of make bench once, at a tiny
// size, so that the benchmark cannot rot: the workers back up and restore,
// the wide backup's records are each stored exactly once and its restore
// gives them back, and the report has every section. (The kcat baselines
// are left out when kcat is not installed; the worker parts never are.)
func TestBenchRunsAtATinySize(t *testing.T) {
	if testing.Short() {
		t.Skip("starts an API server and runs a dozen workers")
	}
	_, err := exec.LookPath("kcat")
	out := filepath.Join(t.TempDir(), "BENCHMARKS.md")
	o := options{mib: 4, rounds: 2, rssFactor: 2, wideTopics: 4, wideMiB: 4, ctrlBackups: 20, ctrlNS: 4, ctrlSteady: 5 * time.Second, codecs: "zstd,zstd-fastest,lz4,none",
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
		"## Backup of a 4 MiB topic", "| " + saramaAloneName + " |", "→ volume (zstd)", "→ volume (zstd, level fastest)", "→ volume (lz4)", "→ volume (none)", "→ gcs (zstd)",
		"### While records flow", "ran in 2 rounds", "Page faults are the worker's minor faults",
		"| " + volumeAloneName + " |", "### Where a none backup waits", "| each partition's goroutine | records from sarama", "| each partition's uploads | the disk",
		"## Restore of that backup", "armory worker --restore", "The writers ran in 2 rounds", "### Where the restore's CPU goes",
		"## Memory does not grow with the topic", "Peak RSS ratio",
		"## A wide backup: 4 topics × 3 partitions", "none missing or repeated",
		"### Restoring it", "4 topics × 3 partitions, transactions, createTopics", "the same records (key, value, headers), in order, none missing or added",
		"## The controller with 20 Backups",
	} {
		if !strings.Contains(report, want) {
			t.Errorf("the report has no %q:\n%s", want, report)
		}
	}
	if strings.Contains(report, ".trace: ") {
		t.Errorf("the traced none backup's trace could not be read:\n%s", report)
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
	if o.kcat && (!strings.Contains(report, "kcat -C > /dev/null (baseline)") || !strings.Contains(report, "### Against the targets")) {
		t.Errorf("kcat is installed but the report has no kcat baseline or no targets:\n%s", report)
	}
}

// TestTargets: each volume backup is set beside its target, and one not met
// is explained by what this run measured: more CPU than the cores can give
// in the target's time, or else the costs paid once.
func TestTargets(t *testing.T) {
	mb := int64(1_000_000_000)
	backups := []result{
		{name: "kcat -C > /dev/null (baseline)", seconds: 2, bytes: mb, cpuSeconds: 1, kfakeCPUSeconds: 1},
		// 8 CPU s in zstd's 4 s target: 2 cores. 10 in 4: 2.5.
		{name: "armory worker --backup → volume (zstd)", seconds: 8, bytes: mb, cpuSeconds: 8.5, kfakeCPUSeconds: 1.5},
		// lz4's target is 3.33 s.
		{name: "armory worker --backup → volume (lz4)", seconds: 3, bytes: mb, cpuSeconds: 3, kfakeCPUSeconds: 1},
		// 1 GB at 500 MB/s while flowing is 2 s of the 3.5.
		{name: "armory worker --backup → volume (none)", seconds: 3.5, bytes: mb, cpuSeconds: 2.2, kfakeCPUSeconds: 1, flowMBps: 500},
		// The same to tmpfs: 5 CPU s in none's 2.22 s target is 2.25 cores.
		{name: "armory worker --backup → volume on tmpfs (none)", seconds: 2.5, bytes: mb, cpuSeconds: 4, kfakeCPUSeconds: 1},
	}
	got := renderTargets(backups, 2, 0)
	for _, want := range []string{
		"| zstd | 0.50× (4.0 s) | 0.25× |  | 10.0 | 2.50 |  |  | CPU: the work of this run needs 2.50 cores to finish in 4.0 s, this machine has 2 |",
		"| lz4 | 0.60× (3.3 s) | 0.67× |  | 4.0 | 1.20 |  |  | met |",
		"| none | 0.90× (2.2 s) | 0.57× | 1.00× | 3.2 | 1.44 |  |  | not CPU (1.44 cores would do), and met while records flow: 1.5 s of the 3.5 s are paid once",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("no %q in\n%s", want, got)
		}
	}
	// What its page faults cost, when the machine's price of one is known.
	backups[3].pageFaults = 70_000
	if got := renderTargets(backups, 2, 14); !strings.Contains(got, "paid once, the start and the drain of the last segments; "+
		"of the worker's CPU, about 1.0 s went to first touches of its memory (70000 page faults at 14.0 µs)") {
		t.Errorf("a backup's page faults are not priced:\n%s", got)
	}
	// The same none backup, flowing at 0.8× only: it waited.
	backups[3].flowMBps, backups[3].stealPct = 400, 27
	// Its tmpfs run says the cores would not have done without a disk.
	tmpfsSays := "; to tmpfs, with no disk to wait on, it reached 0.80×, its CPU and kfake's (5.0 s) needing 2.25 cores at the target, " +
		"more than this machine's 2"
	got = renderTargets(backups, 2, 0)
	if !strings.Contains(got, "not CPU (1.44 cores would do), and below the target while records flow too: "+
		"the run waited, on the disk (its fsyncs; see the dd and volume-alone rows), on Kafka, or for cores (steal 27%)"+tmpfsSays+" |") {
		t.Errorf("a backup below its target while records flow, without the CPU to blame:\n%s", got)
	}
	if rows := strings.Count(got, "\n| "); rows != 4 {
		t.Errorf("the targets are for the disk volume's backups: want a header and 3 rows, got %d:\n%s", rows, got)
	}
	// A tmpfs run that would fit in the cores is not said to exceed them.
	backups[4].cpuSeconds = 2
	if got := renderTargets(backups, 2, 0); !strings.Contains(got, "(3.0 s) needing 1.35 cores at the target |") {
		t.Errorf("a tmpfs run within the cores:\n%s", got)
	}
	// 4.45 CPU s in 2.22 s, 2.0025 cores, prints as 2.00: not said to be
	// more than 2.
	backups[4].cpuSeconds = 3.45
	if got := renderTargets(backups, 2, 0); !strings.Contains(got, " needing 2.00 cores at the target |") {
		t.Errorf("a tmpfs run at the cores, as printed:\n%s", got)
	}
	backups[4].cpuSeconds = 4
	if strings.Contains(got, "the disk alone") {
		t.Errorf("no dd row, yet the disk is blamed:\n%s", got)
	}
	// A disk that writes at 0.8× kcat (2.5 s for kcat's 2) stands in the
	// way of none's 0.9×, not of lz4's 0.6×, already met.
	backups = append(backups, result{name: "3 × dd bs=64k conv=fsync at once to the volume's disk, a file each (the disk's speed)", seconds: 2.5, bytes: mb})
	got = renderTargets(backups, 2, 0)
	if !strings.Contains(got, "(steal 27%)"+tmpfsSays+"; and the disk alone (the dd row) writes at 0.80× kcat -C: a backup that stores every byte on it cannot reach 0.90× |") {
		t.Errorf("a disk slower than none's target is not named:\n%s", got)
	}
	if strings.Count(got, "the disk alone") != 1 {
		t.Errorf("the disk is blamed where it is fast enough (0.8× against lz4's 0.6×, zstd's 0.5×), or where a target is met:\n%s", got)
	}
	// A disk faster than the target (2 s, kcat's speed): none's row says
	// how near the backup came to it (0.57×); zstd's, short of cores, and
	// lz4's, met, do not.
	backups[len(backups)-1].seconds = 2
	got = renderTargets(backups, 2, 0)
	if n := strings.Count(got, "; and the disk alone (the dd row) writes at 1.00× kcat -C, this backup at 0.57× that |"); n != 1 ||
		strings.Count(got, "the disk alone") != 1 {
		t.Errorf("a disk faster than the target: want it set beside none's backup only:\n%s", got)
	}
	backups[len(backups)-1].seconds = 2.5
	// The volume storing segments by itself, as a backup does, is the
	// storage's speed when it ran: none's row names it (0.5× here, slower
	// than dd's) instead of dd's; lz4's target is met, and 0.5× is not
	// below zstd's.
	withVolume := append(slices.Clone(backups), result{name: volumeAloneName, seconds: 4, bytes: mb})
	got = renderTargets(withVolume, 2, 0)
	if n := strings.Count(got, "; and storing alone (the volume-alone row) runs at 0.50× kcat -C: a backup that stores every byte on it cannot reach"); n != 1 ||
		strings.Contains(got, "the disk alone") {
		t.Errorf("the volume-alone row is named in %d rows (want 1, none's: lz4's target is met), or dd's is too:\n%s", n, got)
	}
	// sarama's consumer alone in 2.5 s (0.80× kcat) with 1.5 CPU s: of
	// none's 2.2 CPU s, 0.7 are the worker's own; said only where a
	// target is missed.
	backups = append(backups, result{name: saramaAloneName, seconds: 2.5, bytes: mb, cpuSeconds: 1.5})
	got = renderTargets(backups, 2, 0)
	if !strings.Contains(got, "; sarama's consumer alone read the topic at 0.80× kcat -C (2.5 s, 1.5 CPU s): the worker's 0.7 CPU s beyond it are its own work; and the disk alone") {
		t.Errorf("none's row does not set sarama's consumer alone beside it:\n%s", got)
	}
	if n := strings.Count(got, "sarama's consumer alone"); n != 2 { // none's and zstd's, not lz4's (met)
		t.Errorf("sarama's consumer alone is named in %d rows, want 2 (the targets missed):\n%s", n, got)
	}
	// sarama's consumer alone slower than the backup (none's 3.5 s): the
	// client by itself misses the target. Faster, but with more CPU than
	// the backup's 2.2 s: no work of the worker's own to speak of.
	backups[len(backups)-1].seconds, backups[len(backups)-1].cpuSeconds = 3.6, 2.5
	got = renderTargets(backups, 2, 0)
	if !strings.Contains(got, "; sarama's consumer alone read the topic at 0.56× kcat -C (3.6 s, 2.5 CPU s), no faster than this backup: "+
		"the Kafka client by itself misses the target here; and the disk alone") {
		t.Errorf("none's row does not say that sarama alone misses the target too:\n%s", got)
	}
	backups[len(backups)-1].seconds = 2.1
	if got = renderTargets(backups, 2, 0); !strings.Contains(got, "(2.1 s, 2.5 CPU s): the worker used no more CPU than it; and the disk alone") {
		t.Errorf("a worker that used less CPU than sarama alone is said to have work of its own:\n%s", got)
	}
	if got := renderTargets(backups[1:], 2, 0); got != "" {
		t.Errorf("without the kcat baseline there is nothing to compare: %q", got)
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

// TestMiddleRun: a reader run in rounds is reported by its run of the middle
// time, whole (its other figures from that run), with every run's seconds
// in the order they ran.
func TestMiddleRun(t *testing.T) {
	runs := []result{{seconds: 9, cpuSeconds: 1}, {seconds: 7, cpuSeconds: 2}, {seconds: 8, cpuSeconds: 3}}
	if r := middleRun(runs); r.seconds != 8 || r.cpuSeconds != 3 || !slices.Equal(r.rounds, []float64{9, 7, 8}) {
		t.Errorf("middle of 9, 7, 8 s = %+v", r)
	}
	if r := middleRun(runs[:2]); r.seconds != 7 || r.cpuSeconds != 2 {
		t.Errorf("middle of 9, 7 s = %+v, want the faster", r)
	}
	if r := middleRun(runs[:1]); r.seconds != 9 || len(r.rounds) != 1 {
		t.Errorf("middle of one run = %+v", r)
	}
	if runs[0].seconds != 9 || runs[0].rounds != nil {
		t.Errorf("middleRun changed its argument: %+v", runs)
	}
}

// TestPollPause: the bench scrapes a backup worker rarely while much of the
// topic is left and often near its end, so that the SIGTERM comes soon
// after the last record is read without hundreds of scrapes on the
// worker's CPU.
func TestPollPause(t *testing.T) {
	cases := []struct {
		name          string
		read, records int64
		since         time.Duration
		want          time.Duration
	}{
		{"nothing read yet", 0, 1000, time.Second, 4 * minPollPause},
		{"most of the topic left", 100, 1000, time.Second, maxPollPause},                        // 9 s left
		{"a quarter of what is left", 900, 1000, 900 * time.Millisecond, 25 * time.Millisecond}, // 100 ms left
		{"the last records", 999, 1000, time.Second, minPollPause},
		{"every record read", 1000, 1000, time.Second, minPollPause},
		{"more read than the topic (records read twice)", 1200, 1000, time.Second, minPollPause},
	}
	for _, c := range cases {
		if got := pollPause(c.read, c.records, c.since); got != c.want {
			t.Errorf("%s: pollPause(%d, %d, %v) = %v, want %v", c.name, c.read, c.records, c.since, got, c.want)
		}
	}
	// Polled at its own pauses, a worker reading at a steady rate is
	// scraped a few tens of times, and told to stop within minPollPause of
	// its last record.
	const records, perSecond = 1_153_433, 300_000 // the bench's topic, about the none backup's rate
	var at time.Duration
	scrapes := 0
	for read := int64(0); read < records; scrapes++ {
		at += pollPause(read, records, at)
		read = min(records, int64(at.Seconds()*perSecond))
		if scrapes > 1000 {
			t.Fatal("more than 1000 scrapes")
		}
	}
	end := time.Duration(records * int64(time.Second) / perSecond)
	if scrapes > 60 || at-end > minPollPause {
		t.Errorf("%d scrapes, the last %v after the last record; want at most 60, within %v", scrapes, at-end, minPollPause)
	}
}
