package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kannika/armory/pkg/testenv"
)

// TestDemo runs `make demo`'s program as the Makefile does, to its end
// (--check), and checks what a newcomer would see: the Backup streaming,
// objects in the bucket, the worker process stopping on pause and a new one
// starting on resume, a Restore Done with as many records as were backed up,
// and no process left running afterwards.
func TestDemo(t *testing.T) {
	// The README's command, as a newcomer types it, with the flag that makes
	// it end after its checks.
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "make", "--no-print-directory", "demo", "DEMOFLAGS=--check")
	cmd.Dir = testenv.RepoRoot()
	out, err := cmd.CombinedOutput()
	text := string(out)
	if err != nil {
		t.Fatalf("make demo failed: %v\n%s", err, text)
	}
	t.Logf("demo output:\n%s", text)

	for _, want := range []*regexp.Regexp{
		// kubectl get backups -o wide while streaming, then paused, then streaming again.
		regexp.MustCompile(`(?m)^\s+backup-example\s+🚀 Streaming\s+2/2`),
		regexp.MustCompile(`(?m)^\s+backup-example\s+💤 Paused`),
		regexp.MustCompile(`gs://my-company-kafka-backups/prod/magic\.events: [1-9]\d* records in [1-9]\d* segments, e\.g\. magic\.events/0/`),
		regexp.MustCompile(`(?m)^\s+restore-magic-events\s+✅ Done.*100%\s+(\d+)/(\d+)`),
		regexp.MustCompile(`✓ restored (\d+) records = (\d+) backed up = (\d+) read back from magic\.events\.restored`),
		regexp.MustCompile(`every process it started has exited`),
	} {
		if !want.MatchString(text) {
			t.Errorf("the demo's output has no line matching %s", want)
		}
	}
	if m := regexp.MustCompile(`✓ restored (\d+) records = (\d+) backed up = (\d+) read back`).FindStringSubmatch(text); m != nil {
		if m[1] != m[2] || m[2] != m[3] {
			t.Errorf("restored %s, backed up %s, read back %s: want them equal", m[1], m[2], m[3])
		}
	}
	// Pause stopped the worker, resume started another.
	starts := regexp.MustCompile(`podrunner: backup-example-backup-\S+: started pid (\d+)`).FindAllStringSubmatch(text, -1)
	stops := regexp.MustCompile(`podrunner: backup-example-backup-\S+: pid (\d+) stopped \(SIGTERM\), exit code 0`).FindAllStringSubmatch(text, -1)
	if len(starts) != 2 || len(stops) != 2 || starts[0][1] != stops[0][1] || starts[1][1] != stops[1][1] {
		t.Errorf("worker starts %v and stops %v: want one stopped by the pause, one started by the resume and stopped at the end", starts, stops)
	}
	// The tour in the README is what the demo runs: each command it shows.
	readme, err := os.ReadFile(filepath.Join(testenv.RepoRoot(), "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	shown := 0
	lines := strings.Split(string(readme), "\n")
	for i := 0; i < len(lines); i++ {
		if !strings.HasPrefix(lines[i], "$ kubectl ") {
			continue
		}
		command := lines[i]
		if strings.HasSuffix(command, "<<EOF") { // the here-document is part of it
			for i++; i < len(lines); i++ {
				command += "\n" + lines[i]
				if lines[i] == "EOF" {
					break
				}
			}
		}
		shown++
		if !strings.Contains(text, command) {
			t.Errorf("README.md shows\n%s\nwhich the demo does not run", command)
		}
	}
	if shown < 5 {
		t.Errorf("README.md shows %d kubectl commands; the tour has more", shown)
	}
	// Every PID the demo named is gone.
	for _, m := range regexp.MustCompile(`pids? ((?:\d+ ?)+)`).FindAllStringSubmatch(text, -1) {
		for _, f := range strings.Fields(m[1]) {
			pid, _ := strconv.Atoi(f)
			if alive(pid) {
				t.Errorf("pid %d, started by the demo, still runs after it exited", pid)
			}
		}
	}
}
