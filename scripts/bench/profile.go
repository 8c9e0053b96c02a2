package main

import (
	"fmt"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
)

// cpuPart names where some of a worker's CPU goes, by the functions whose
// cumulative times in a pprof profile add up to it, leaving out the
// samples whose stack matches ignore (pprof's -ignore), if set.
type cpuPart struct {
	part      string
	functions []string
	ignore    string
}

// compressBlock compresses every block, on the goroutine that filled it or
// on one of its own.
const compressBlock = "segment.(*pendingBlock).compress"

const (
	compressingPart = "segments: compress blocks (on the partitions' goroutines or their own)"
	storagePart     = "storage: write (volume files and fsync, or GCS requests)"
)

// backupCPUParts and restoreCPUParts split a backup's and a restore's CPU.
var backupCPUParts = []cpuPart{
	{"Kafka: fetch and decode responses (sarama)", []string{"sarama.(*brokerConsumer).subscriptionConsumer"}, ""},
	{"Kafka: hand records to the partitions (sarama)", []string{"sarama.(*partitionConsumer).responseFeeder"}, ""},
	{"segments: encode records into blocks, compressing left out", []string{"segment.(*Writer).Append", "segment.(*Writer).Close"},
		regexp.QuoteMeta(compressBlock)},
	{compressingPart, []string{compressBlock}, ""},
	{storagePart, []string{"worker.(*partitionBackup).upload"}, ""},
	{"garbage collector", []string{"runtime.gcBgMarkWorker"}, ""},
}

var restoreCPUParts = []cpuPart{
	{"segments: read, verify and decode", []string{"restore.readPartition"}, ""},
	{"… of which decompressing blocks", []string{"segment.Codec.decompress"}, ""},
	{"writer: records to messages, transactions", []string{"restore.(*restoreRun).write"}, ""},
	{"Kafka: produce (sarama's goroutines)", []string{"sarama.withRecover"}, ""},
	{"… of which encoding produce requests", []string{"sarama.(*ProduceRequest).encode"}, ""},
	{"garbage collector", []string{"runtime.gcBgMarkWorker"}, ""},
}

// profileSummary splits the CPU of a worker's profile into parts, as a
// table: what `go tool pprof -top -cum` says of each.
func profileSummary(file string, parts []cpuPart) (string, error) {
	secs, total, err := profileParts(file, parts)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	b.WriteString("| part | CPU s | share |\n|---|---|---|\n")
	for _, p := range parts {
		fmt.Fprintf(&b, "| %s | %.1f | %.0f%% |\n", p.part, secs[p.part], 100*secs[p.part]/total)
	}
	fmt.Fprintf(&b, "| all (profile samples) | %.1f | 100%% |\n", total)
	return b.String(), nil
}

// profileParts returns the CPU seconds of each part (by its name) in a
// profile, and the profile's total.
func profileParts(file string, parts []cpuPart) (map[string]float64, float64, error) {
	// One pprof run per distinct ignore; the one without gives the total.
	byIgnore := map[string][]cpuPart{"": nil}
	for _, p := range parts {
		byIgnore[p.ignore] = append(byIgnore[p.ignore], p)
	}
	secs := map[string]float64{}
	var total float64
	for ignore, parts := range byIgnore {
		var args []string
		if ignore != "" {
			args = []string{"-ignore=" + ignore}
		}
		cum, t, err := cumulativeSeconds(file, args...)
		if err != nil {
			return nil, 0, err
		}
		if ignore == "" {
			total = t
		}
		for _, p := range parts {
			for _, fn := range p.functions {
				for name, c := range cum {
					if strings.HasSuffix(name, fn) {
						secs[p.part] += c
					}
				}
			}
		}
	}
	if total == 0 {
		return nil, 0, fmt.Errorf("%s: no samples", file)
	}
	return secs, total, nil
}

// cumulativeSeconds returns every function's cumulative seconds in a
// profile (`go tool pprof -top -cum`, with pprofFlags such as -ignore or
// -focus), by its name, and the profile's total (zero for a profile of
// delays, which has none).
func cumulativeSeconds(file string, pprofFlags ...string) (map[string]float64, float64, error) {
	args := append([]string{"tool", "pprof", "-top", "-cum", "-nodecount=400"}, pprofFlags...)
	out, err := exec.Command("go", append(args, file)...).Output()
	if err != nil {
		return nil, 0, fmt.Errorf("go tool pprof %s: %w", file, err)
	}
	var total float64
	cum := map[string]float64{}
	for _, line := range strings.Split(string(out), "\n") {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(line), "Duration:"); ok {
			// "Duration: 6.23s, Total samples = 5.68s (91.16%)"
			if _, after, ok := strings.Cut(rest, "Total samples = "); ok {
				total = seconds(strings.Fields(after)[0])
			}
			continue
		}
		f := strings.Fields(line)
		if len(f) < 6 {
			continue
		}
		cum[strings.Join(f[5:], " ")] = seconds(f[3])
	}
	return cum, total, nil
}

// seconds parses pprof's "1.23s", "450ms" or "1.2mins".
func seconds(s string) float64 {
	for _, u := range []struct {
		suffix string
		scale  float64
	}{{"mins", 60}, {"ms", 0.001}, {"us", 1e-6}, {"s", 1}} {
		if v, ok := strings.CutSuffix(s, u.suffix); ok {
			f, _ := strconv.ParseFloat(v, 64)
			return f * u.scale
		}
	}
	return 0
}
