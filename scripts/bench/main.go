// Command bench measures the backup and restore data paths against a
// baseline in the same run: a topic of at least 1 GiB on kfake (3 brokers,
// loopback), read by `kcat -C` to /dev/null, then backed up by `armory worker
// --backup` to a volume and to fake-gcs-server; then the volume backup
// restored by `armory worker --restore` into an empty topic of a second
// kfake cluster, beside `kcat -P` producing the same records from files. It
// prints MB/s, records/s and peak RSS side by side and rewrites
// docs/BENCHMARKS.md. Run it with `make bench`.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/IBM/sarama"
	"github.com/fsouza/fake-gcs-server/fakestorage"
	"github.com/twmb/franz-go/pkg/kfake"
	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kannika/armory/pkg/kafka"
	"github.com/kannika/armory/pkg/layout"
	"github.com/kannika/armory/pkg/storage"
	"github.com/kannika/armory/pkg/storage/gcs"
	"github.com/kannika/armory/pkg/storage/volume"
	"github.com/kannika/armory/pkg/testenv"
)

const (
	topic      = "bench.events"
	partitions = 3
	valueSize  = 1000
)

type result struct {
	name           string
	seconds        float64
	records, bytes int64
	peakRSSMiB     float64
	compressedMiB  float64
	segments       int
}

func main() {
	totalMiB := flag.Int("mib", 1100, "MiB of record values to produce (at least 1024 for the published figures)")
	out := flag.String("out", filepath.Join(testenv.RepoRoot(), "docs", "BENCHMARKS.md"), "where to write the report")
	segmentBench := flag.String("segment-bench", "", "output of the pkg/segment benchmarks, included in the report")
	flag.Parse()
	if err := run(*totalMiB, *out, *segmentBench); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(totalMiB int, out, segmentBenchFile string) error {
	ctx := context.Background()
	cluster, err := kfake.NewCluster(kfake.NumBrokers(3), kfake.SeedTopics(partitions, topic),
		kfake.BrokerConfigs(map[string]string{"message.max.bytes": "8388608"}))
	if err != nil {
		return err
	}
	defer cluster.Close()
	brokers := cluster.ListenAddrs()

	records := int64(totalMiB) << 20 / valueSize
	fmt.Printf("producing %d records of %d bytes (%d MiB) to %d partitions...\n", records, valueSize, totalMiB, partitions)
	start := time.Now()
	if err := produce(brokers, records); err != nil {
		return err
	}
	fmt.Printf("produced in %.1fs\n", time.Since(start).Seconds())
	totalBytes := records * (valueSize + 16) // value + key

	var results []result
	kc, err := runKcat(brokers, records)
	if err != nil {
		return err
	}
	kc.bytes = totalBytes
	results = append(results, kc)

	env, err := testenv.Start()
	if err != nil {
		return err
	}
	defer env.Stop()
	dir, err := os.MkdirTemp("", "armory-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	armory, removeBin, err := testenv.BuildArmory()
	if err != nil {
		return err
	}
	defer removeBin()

	vol := filepath.Join(dir, "volume")
	vb, err := volume.New(vol)
	if err != nil {
		return err
	}
	r, err := runWorker(ctx, env, armory, "volume", "zstd", brokers, "volume: {capacity: 10Gi}", vol, vb, records)
	if err != nil {
		return err
	}
	r.bytes = totalBytes
	results = append(results, r)

	vol2 := filepath.Join(dir, "volume-lz4")
	vb2, err := volume.New(vol2)
	if err != nil {
		return err
	}
	r, err = runWorker(ctx, env, armory, "volume-lz4", "lz4", brokers, "volume: {capacity: 10Gi}", vol2, vb2, records)
	if err != nil {
		return err
	}
	r.bytes = totalBytes
	results = append(results, r)

	srv, err := fakestorage.NewServerWithOptions(fakestorage.Options{Scheme: "http", Host: "127.0.0.1", Port: 0, Writer: io.Discard})
	if err != nil {
		return err
	}
	defer srv.Stop()
	srv.CreateBucketWithOpts(fakestorage.CreateBucketOpts{Name: "bench"})
	gb, err := gcs.New(ctx, gcs.Config{Bucket: "bench", Endpoint: srv.URL()})
	if err != nil {
		return err
	}
	r, err = runWorker(ctx, env, armory, "gcs", "zstd", brokers, fmt.Sprintf("gcsBucket: {bucket: bench, endpoint: %q}", srv.URL()), "", gb, records)
	if err != nil {
		return err
	}
	r.bytes = totalBytes
	results = append(results, r)

	// Restore: the zstd volume backup into an empty topic of another
	// cluster, beside kcat -P writing the same records.
	target, err := kfake.NewCluster(kfake.NumBrokers(3), kfake.BrokerConfigs(map[string]string{"message.max.bytes": "8388608"}))
	if err != nil {
		return err
	}
	defer target.Close()
	if err := target.CreateTopic("bench.kcat", partitions, nil); err != nil {
		return err
	}
	kp, err := runKcatProduce(brokers, target.ListenAddrs(), dir, records)
	if err != nil {
		return err
	}
	kp.bytes = totalBytes
	var restores []result
	restores = append(restores, kp)
	rr, err := runRestore(ctx, env, armory, target.ListenAddrs(), vol, records)
	if err != nil {
		return err
	}
	rr.bytes = totalBytes
	restores = append(restores, rr)

	var segmentBench string
	if segmentBenchFile != "" {
		b, _ := os.ReadFile(segmentBenchFile)
		segmentBench = string(b)
	}
	report := renderReport(results, restores, totalMiB, records, segmentBench)
	fmt.Println(report)
	return os.WriteFile(out, []byte(report), 0o644)
}

// produce writes records with 16-byte keys and 1000-byte values that
// compress about as well as JSON events do.
func produce(brokers []string, records int64) error {
	cfg := sarama.NewConfig()
	cfg.Version = kafka.Version
	cfg.Producer.Return.Successes = true
	cfg.Producer.RequiredAcks = sarama.WaitForLocal
	cfg.Producer.Flush.Bytes = 1 << 20
	cfg.Producer.Flush.Frequency = 10 * time.Millisecond
	cfg.Producer.MaxMessageBytes = 4 << 20
	cfg.Producer.Compression = sarama.CompressionLZ4
	p, err := sarama.NewAsyncProducer(brokers, cfg)
	if err != nil {
		return err
	}
	rng := rand.New(rand.NewPCG(1, 2))
	words := strings.Fields("user order page view click cart checkout product search session device region price amount currency status")
	done := make(chan error, 1)
	go func() {
		var n int64
		for {
			select {
			case <-p.Successes():
				n++
			case err := <-p.Errors():
				done <- err
				return
			}
			if n == records {
				done <- nil
				return
			}
		}
	}()
	for i := range records {
		var b strings.Builder
		for b.Len() < valueSize {
			fmt.Fprintf(&b, `"%s":%d,`, words[rng.IntN(len(words))], rng.IntN(100000))
		}
		value := []byte(b.String())[:valueSize]
		p.Input() <- &sarama.ProducerMessage{Topic: topic, Partition: int32(i % partitions),
			Key: sarama.StringEncoder(fmt.Sprintf("key-%012d", i)), Value: sarama.ByteEncoder(value), Timestamp: time.Now()}
	}
	err = <-done
	p.AsyncClose()
	return err
}

func runKcat(brokers []string, records int64) (result, error) {
	fmt.Println("kcat -C to /dev/null...")
	cmd := exec.Command("kcat", "-C", "-b", strings.Join(brokers, ","), "-t", topic, "-o", "beginning", "-e", "-q", "-f", "%k%s\n")
	devnull, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		return result{}, err
	}
	defer devnull.Close()
	cmd.Stdout, cmd.Stderr = devnull, os.Stderr
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return result{}, fmt.Errorf("kcat: %w (install it with apt-get install kcat)", err)
	}
	rss := peakRSS(cmd.Process.Pid)
	// Sample until the process is a zombie: wait for it only after.
	waitExited(cmd.Process.Pid)
	elapsed := time.Since(start).Seconds()
	peak := rss()
	if err := cmd.Wait(); err != nil {
		return result{}, fmt.Errorf("kcat: %w", err)
	}
	return result{name: "kcat -C > /dev/null (baseline)", seconds: elapsed, records: records, peakRSSMiB: peak}, nil
}

// peakRSS samples a running process's VmHWM (its peak resident set since
// exec) until it exits, and returns the last sample in MiB. getrusage's
// ru_maxrss would count the pages of this (large) parent that the child
// shared between fork and exec.
func peakRSS(pid int) (stop func() float64) {
	var peak float64
	done := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			if kib := vmHWM(pid); kib > peak {
				peak = kib
			}
			select {
			case <-done:
				return
			case <-tick.C:
			}
		}
	}()
	return func() float64 {
		close(done)
		<-stopped
		return peak / 1024
	}
}

// waitExited waits until a child has exited, leaving it to be reaped by
// exec.Cmd.Wait, so its /proc entry can be sampled to the end.
func waitExited(pid int) {
	var info unix.Siginfo
	_ = unix.Waitid(unix.P_PID, pid, &info, unix.WEXITED|unix.WNOWAIT, nil)
}

func vmHWM(pid int) float64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			var kib float64
			fmt.Sscanf(strings.TrimSpace(rest), "%f", &kib)
			return kib
		}
	}
	return 0
}

// runWorker backs the topic up with `armory worker --backup`, from start to
// every record stored, then SIGTERM.
func runWorker(ctx context.Context, env *testenv.Env, armory, name, compression string, brokers []string, storageSpec, storagePath string, b storage.Bucket, records int64) (result, error) {
	fmt.Printf("armory worker --backup to %s...\n", name)
	ns := "bench-" + name
	manifest := fmt.Sprintf(`apiVersion: kannika.io/v1alpha
kind: EventHub
metadata: {name: kafka}
spec: {kafka: {properties: {bootstrap.servers: %q}}}
---
apiVersion: kannika.io/v1alpha
kind: Storage
metadata: {name: storage}
spec: {%s}
---
apiVersion: kannika.io/v1alpha
kind: Backup
metadata: {name: bench}
spec:
  source: kafka
  sink: storage
  compression: {algorithm: %s}
  segmentRolloverTriggers: {timeoutSeconds: 1}
  streams: [{topic: %s}]
`, strings.Join(brokers, ","), storageSpec, compression, topic)
	if err := applyIn(ctx, env, ns, manifest); err != nil {
		return result{}, err
	}
	args := []string{"worker", "--backup=bench", "--kubeconfig", env.Kubeconfig, "--namespace", ns,
		"--metrics-bind-address", "0", "--health-probe-bind-address", "0"}
	if storagePath != "" {
		args = append(args, "--storage-path", storagePath)
	}
	worker := exec.Command(armory, args...)
	logFile, err := os.CreateTemp("", "armory-bench-worker-*.log")
	if err != nil {
		return result{}, err
	}
	defer os.Remove(logFile.Name())
	worker.Stdout, worker.Stderr = logFile, logFile
	start := time.Now()
	if err := worker.Start(); err != nil {
		return result{}, err
	}
	rss := peakRSS(worker.Process.Pid)
	per := records / partitions
	deadline := time.Now().Add(10 * time.Minute)
	for {
		stored, segments, compressed := int64(0), 0, int64(0)
		for p := range int32(partitions) {
			st, err := layout.ListPartition(ctx, b, topic, p)
			if err != nil {
				return result{}, err
			}
			stored += st.Records
			segments += len(st.Objects)
			for _, o := range st.Objects {
				if a, err := b.Attributes(ctx, o.Name); err == nil {
					compressed += a.Size
				}
			}
		}
		if stored >= per*partitions {
			elapsed := time.Since(start).Seconds()
			_ = worker.Process.Signal(syscall.SIGTERM)
			waitExited(worker.Process.Pid)
			peak := rss()
			if err := worker.Wait(); err != nil {
				return result{}, fmt.Errorf("worker: %w", err)
			}
			return result{name: fmt.Sprintf("armory worker --backup → %s (%s)", strings.TrimSuffix(name, "-lz4"), compression), seconds: elapsed, records: stored,
				peakRSSMiB: peak, compressedMiB: float64(compressed) / (1 << 20), segments: segments}, nil
		}
		if time.Now().After(deadline) {
			_ = worker.Process.Kill()
			return result{}, fmt.Errorf("the worker stored %d of %d records in 10 minutes", stored, records)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// runKcatProduce dumps each partition with kcat -C to a file, then times
// one `kcat -P` per partition (in parallel, acks=all, idempotent) writing
// those records into an empty topic of the target cluster.
func runKcatProduce(source, target []string, dir string, records int64) (result, error) {
	fmt.Println("kcat -P from files (baseline)...")
	const restored = "bench.kcat"
	var files []string
	for p := range partitions {
		f := filepath.Join(dir, fmt.Sprintf("partition-%d.txt", p))
		out, err := os.Create(f)
		if err != nil {
			return result{}, err
		}
		cmd := exec.Command("kcat", "-C", "-b", strings.Join(source, ","), "-t", topic, "-p", fmt.Sprint(p), "-o", "beginning", "-e", "-q", "-f", "%k\t%s\n")
		cmd.Stdout, cmd.Stderr = out, os.Stderr
		err = cmd.Run()
		out.Close()
		if err != nil {
			return result{}, fmt.Errorf("kcat -C: %w", err)
		}
		files = append(files, f)
	}
	start := time.Now()
	var cmds []*exec.Cmd
	var stops []func() float64
	for p, f := range files {
		in, err := os.Open(f)
		if err != nil {
			return result{}, err
		}
		defer in.Close()
		cmd := exec.Command("kcat", "-P", "-b", strings.Join(target, ","), "-t", restored, "-p", fmt.Sprint(p), "-K", "\t",
			"-X", "acks=all", "-X", "enable.idempotence=true", "-X", "topic.metadata.refresh.interval.ms=1000")
		cmd.Stdin, cmd.Stderr = in, os.Stderr
		if err := cmd.Start(); err != nil {
			return result{}, err
		}
		cmds = append(cmds, cmd)
		stops = append(stops, peakRSS(cmd.Process.Pid))
	}
	var peak float64
	for i, cmd := range cmds {
		waitExited(cmd.Process.Pid)
		peak += stops[i]()
		if err := cmd.Wait(); err != nil {
			return result{}, fmt.Errorf("kcat -P: %w", err)
		}
	}
	return result{name: fmt.Sprintf("%d × kcat -P from files, acks=all, idempotent (baseline)", partitions), seconds: time.Since(start).Seconds(),
		records: records, peakRSSMiB: peak}, nil
}

// runRestore restores the volume backup with `armory worker --restore` into
// a topic it creates on the target cluster, from start to exit 0.
func runRestore(ctx context.Context, env *testenv.Env, armory string, target []string, storagePath string, records int64) (result, error) {
	fmt.Println("armory worker --restore from the volume...")
	ns := "bench-restore"
	manifest := fmt.Sprintf(`apiVersion: kannika.io/v1alpha
kind: EventHub
metadata: {name: target}
spec: {kafka: {properties: {bootstrap.servers: %q}}}
---
apiVersion: kannika.io/v1alpha
kind: Storage
metadata: {name: storage}
spec: {volume: {capacity: 10Gi}}
---
apiVersion: kannika.io/v1alpha
kind: Restore
metadata: {name: bench}
spec:
  source: storage
  sink: target
  enabled: true
  config:
    createTopics: true
    topics: [{source: %s, target: bench.restored}]
`, strings.Join(target, ","), topic)
	if err := applyIn(ctx, env, ns, manifest); err != nil {
		return result{}, err
	}
	worker := exec.Command(armory, "worker", "--restore=bench", "--kubeconfig", env.Kubeconfig, "--namespace", ns,
		"--storage-path", storagePath, "--metrics-bind-address", "0", "--health-probe-bind-address", "0")
	logFile, err := os.CreateTemp("", "armory-bench-restore-*.log")
	if err != nil {
		return result{}, err
	}
	defer os.Remove(logFile.Name())
	worker.Stdout, worker.Stderr = logFile, logFile
	start := time.Now()
	if err := worker.Start(); err != nil {
		return result{}, err
	}
	rss := peakRSS(worker.Process.Pid)
	waitExited(worker.Process.Pid)
	elapsed := time.Since(start).Seconds()
	peak := rss()
	if err := worker.Wait(); err != nil {
		log, _ := os.ReadFile(logFile.Name())
		return result{}, fmt.Errorf("restore worker: %w\n%s", err, log)
	}
	return result{name: "armory worker --restore ← volume (zstd), transactions, createTopics", seconds: elapsed, records: records, peakRSSMiB: peak}, nil
}

func renderReport(results, restores []result, totalMiB int, records int64, segmentBench string) string {
	var b strings.Builder
	host, _ := os.Hostname()
	fmt.Fprintf(&b, "# Benchmarks\n\nProduced by `make bench` (`go run ./scripts/bench`) on %s, %s, %d cores, %s; ",
		time.Now().UTC().Format("2006-01-02"), runtime.GOARCH, runtime.NumCPU(), runtime.Version())
	fmt.Fprintf(&b, "host %q. Every figure below was printed by that run; rerun it to refresh this page.\n\n", host)
	fmt.Fprintf(&b, "## Backup of a %d MiB topic\n\n", totalMiB)
	fmt.Fprintf(&b, "%d records (16-byte key, %d-byte JSON-like value), %d partitions, on kfake with 3 brokers sharing the machine's cores "+
		"with the reader. Each reader starts from the beginning of the topic; the worker's time runs from its start to every record "+
		"stored (volume: fsynced files; GCS: fake-gcs-server in memory, a correctness stand-in, not a speed reference), with "+
		"the compression shown, 16 MiB segments and a 1 s rollover timeout (so up to about 1 s of the last segment's wait is included).\n\n",
		records, valueSize, partitions)
	b.WriteString("| reader | seconds | MB/s | records/s | peak RSS MiB | stored MiB | segments |\n|---|---|---|---|---|---|---|\n")
	for _, r := range results {
		stored, segments := "", ""
		if r.segments > 0 {
			stored, segments = fmt.Sprintf("%.0f", r.compressedMiB), fmt.Sprint(r.segments)
		}
		fmt.Fprintf(&b, "| %s | %.1f | %.0f | %.0f | %.0f | %s | %s |\n", r.name, r.seconds,
			float64(r.bytes)/r.seconds/1e6, float64(r.records)/r.seconds, r.peakRSSMiB, stored, segments)
	}
	b.WriteString("\nMB/s counts keys and values (10^6 bytes). Peak RSS is the process's VmHWM (/proc/PID/status), sampled every 20 ms until it exits.\n")
	if len(restores) > 0 {
		fmt.Fprintf(&b, "\n## Restore of that backup\n\nThe zstd volume backup above restored into an empty topic of a second kfake cluster (3 brokers, same machine). "+
			"The baseline is one `kcat -P` per partition (run in parallel, acks=all, idempotent, librdkafka defaults otherwise) writing the same keys and "+
			"values from files that `kcat -C` dumped beforehand (the dump is not timed). The worker's time runs from its start (API reads, Lease, planning, "+
			"creating the topic, the exactly-once claim) to its exit after the last transaction committed; transactions at the defaults "+
			"(50,000 records, 32 MiB or 2 s), 8 partitions read at once. Peak RSS of the baseline is the sum of its processes'.\n\n")
		b.WriteString("| writer | seconds | MB/s | records/s | peak RSS MiB |\n|---|---|---|---|---|\n")
		for _, r := range restores {
			fmt.Fprintf(&b, "| %s | %.1f | %.0f | %.0f | %.0f |\n", r.name, r.seconds, float64(r.bytes)/r.seconds/1e6, float64(r.records)/r.seconds, r.peakRSSMiB)
		}
	}
	if segmentBench != "" {
		b.WriteString("\n## Segment codec\n\n`go test -run '^$' -bench . -benchmem ./pkg/segment` (10,000 records of 1 KiB JSON, a key and a header; ratio = uncompressed / encoded):\n\n```\n")
		b.WriteString(strings.TrimSpace(segmentBench))
		b.WriteString("\n```\n")
	}
	return b.String()
}

// applyIn creates namespace ns and applies manifest in it with kubectl.
func applyIn(ctx context.Context, env *testenv.Env, ns, manifest string) error {
	if _, err := env.Kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		return err
	}
	cmd := exec.Command(env.KubectlPath, "--kubeconfig", env.Kubeconfig, "apply", "-n", ns, "-f", "-")
	cmd.Stdin = strings.NewReader(manifest)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("kubectl apply: %w\n%s", err, out)
	}
	return nil
}
