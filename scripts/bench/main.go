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
	"bytes"
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
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
	"github.com/kannika/armory/pkg/restore"
	"github.com/kannika/armory/pkg/segment"
	"github.com/kannika/armory/pkg/storage"
	"github.com/kannika/armory/pkg/storage/gcs"
	"github.com/kannika/armory/pkg/storage/volume"
	"github.com/kannika/armory/pkg/testenv"
	"github.com/kannika/armory/pkg/worker"
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
	cpuSeconds     float64
	// kfakeCPUSeconds is what the bench's own process (kfake) used
	// meanwhile: the restore's target cluster, on the same 2 cores.
	kfakeCPUSeconds float64
	// stealPct is the share of this VM's CPU time the hypervisor gave to
	// others during the run (steal in /proc/stat): time the run waited
	// for a core it was due.
	stealPct   float64
	checked    bool    // every stored record decoded and compared
	profile    string  // its CPU profile
	flowMBps   float64 // a backup's rate while records flow (flowRate); 0 if unknown
	pageFaults int64   // a worker's minor page faults until its last record was stored
	// rounds are the seconds of every run when the result is the middle
	// one of several (middleRun), in the order they ran.
	rounds []float64
}

// options say what one bench run measures, and at what sizes.
type options struct {
	mib          int // the main topic's MiB of values
	rounds       int // rounds of kcat -C and the disk volume backups (middleRun)
	rssFactor    int // the second topic for the RSS comparison is this many times larger
	wideTopics   int // topics of the wide backup (3 partitions each)
	wideMiB      int // MiB of values across the wide backup
	ctrlBackups  int // Backups the controller scenario creates
	ctrlNS       int // ... across this many namespaces
	ctrlSteady   time.Duration
	only         string // comma-separated scenarios; empty: all
	profileDir   string // write the workers' CPU and allocation profiles here
	trace        bool   // ... and their execution traces
	out          string
	segmentBench string
	kcat         bool   // the kcat baselines run (false in make test when kcat is missing)
	budget       string // --memory-budget of the backup workers; empty: their default
	codecs       string // comma-separated: the codecs the backup scenario measures beside zstd on disk
}

func main() {
	var o options
	flag.IntVar(&o.mib, "mib", 1100, "MiB of record values in the main topic (at least 1024 for the published figures)")
	flag.IntVar(&o.rounds, "rounds", 3, "rounds of the backups beside kcat -C: each reader is reported by its middle run")
	flag.IntVar(&o.rssFactor, "rss-factor", 4, "the RSS comparison backs up a second topic this many times larger than the main one")
	flag.IntVar(&o.wideTopics, "wide-topics", 200, "topics of 3 partitions in the wide backup")
	flag.IntVar(&o.wideMiB, "wide-mib", 600, "MiB of record values across the wide backup's topics")
	flag.IntVar(&o.ctrlBackups, "controller-backups", 1000, "Backups the controller scenario creates")
	flag.IntVar(&o.ctrlNS, "controller-namespaces", 50, "namespaces the controller scenario spreads its Backups over")
	flag.DurationVar(&o.ctrlSteady, "controller-steady", time.Minute, "how long the controller's steady state is watched")
	flag.StringVar(&o.only, "only", "", "run only these scenarios, comma-separated: backup, restore, rss, wide, controller")
	flag.StringVar(&o.profileDir, "profile", "", "write each worker's CPU and allocation profiles (go tool pprof) into this folder")
	flag.BoolVar(&o.trace, "trace", false, "also write each worker's and the controller's execution trace (go tool trace) beside its profiles")
	flag.StringVar(&o.out, "out", filepath.Join(testenv.RepoRoot(), "docs", "BENCHMARKS.md"), "where to write the report")
	flag.StringVar(&o.segmentBench, "segment-bench", "", "output of the pkg/segment benchmarks, included in the report")
	flag.StringVar(&o.budget, "memory-budget", "", "the backup workers' --memory-budget (default: theirs)")
	flag.StringVar(&o.codecs, "codecs", "zstd,zstd-fastest,lz4,none", "the codecs the backup scenario measures, algorithm[-level] (zstd to the disk volume always runs: the restore reads it)")
	noKcat := flag.Bool("no-kcat", false, "leave out the kcat baselines (when kcat is not installed)")
	flag.Parse()
	o.kcat = !*noKcat
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// otherCodecs are the codecs measured on the disk volume beside zstd.
func (o options) otherCodecs() []string {
	var out []string
	for _, c := range strings.Split(o.codecs, ",") {
		if c != "zstd" && c != "" {
			out = append(out, c)
		}
	}
	return out
}

// budgetPhrase names the backup workers' memory budget as the report says it.
func (o options) budgetPhrase() string {
	if o.budget == "" {
		return fmt.Sprintf("the default --memory-budget (%d MiB)", worker.DefaultMemoryBudget>>20)
	}
	return "--memory-budget " + o.budget
}

func (o options) runs(scenario string) bool {
	return o.only == "" || slices.Contains(strings.Split(o.only, ","), scenario)
}

// bench is what the scenarios share: the API server, the armory binary, a
// scratch folder, and the source cluster.
type bench struct {
	options
	ctx     context.Context
	env     *testenv.Env
	armory  string
	dir     string // where volumes are made
	scratch string // the run's own folder (dir may move to tmpfs)
	brokers []string
}

// tracedRun is a worker run with its execution trace, summarised.
type tracedRun struct {
	result
	waits string // waitSummary's table
}

// report is what the run measured, section by section.
type report struct {
	records int64 // of the main topic
	// faultMicros is this machine's cost of a first touch of a page, in
	// µs (pageFaultMicros), measured before the backups.
	faultMicros float64
	// rounds is how many times kcat -C and the disk volume backups ran
	// (1 when only the restore or the RSS comparison needed the backup).
	rounds   int
	backups  []result
	restores []result
	rss      []result
	wide     []result
	// noneWaits is what a traced none backup to the disk waited for.
	noneWaits *tracedRun
	// wideRestore is the restore of the wide backup's first topics.
	wideRestore *result
	ctrl        *controllerResult
}

func run(o options) error {
	b := &bench{options: o, ctx: context.Background()}
	cluster, err := kfake.NewCluster(kfake.NumBrokers(3), kfake.SeedTopics(partitions, topic),
		kfake.BrokerConfigs(map[string]string{"message.max.bytes": "8388608"}))
	if err != nil {
		return err
	}
	defer cluster.Close()
	b.brokers = cluster.ListenAddrs()
	if b.env, err = testenv.Start(); err != nil {
		return err
	}
	defer b.env.Stop()
	if b.dir, err = os.MkdirTemp("", "armory-bench-"); err != nil {
		return err
	}
	defer os.RemoveAll(b.dir)
	b.scratch = b.dir
	armory, removeBin, err := testenv.BuildArmory()
	if err != nil {
		return err
	}
	defer removeBin()
	b.armory = armory
	if err := os.MkdirAll(b.profiles(), 0o755); err != nil {
		return err
	}

	rep := &report{records: int64(o.mib) << 20 / valueSize}
	if o.runs("backup") || o.runs("restore") || o.runs("rss") {
		fmt.Printf("producing %d records of %d bytes (%d MiB) to %d partitions...\n", rep.records, valueSize, o.mib, partitions)
		start := time.Now()
		if err := produce(b.brokers, topic, partitions, rep.records); err != nil {
			return err
		}
		fmt.Printf("produced in %.1fs\n", time.Since(start).Seconds())
	}
	var zstdVolume string // the zstd volume backup, for the restore
	if o.runs("backup") {
		rep.faultMicros = pageFaultMicros()
	}
	if o.runs("backup") || o.runs("restore") || o.runs("rss") {
		// The readers the targets compare run in rounds, each round every
		// reader once in turn, and each is reported by its middle run: this
		// VM's speed drifts by a fifth or more between minutes, which one run
		// each would put between a reader and its baseline.
		codecs := []string{"zstd"}
		rep.rounds = 1
		if o.runs("backup") {
			codecs, rep.rounds = append(codecs, o.otherCodecs()...), max(o.rounds, 1)
		}
		rounds := rep.rounds
		var kcats, saramas, dds, alones []result
		byCodec := map[string][]result{}
		for round := range rounds {
			if rounds > 1 {
				fmt.Printf("round %d of %d\n", round+1, rounds)
			}
			if o.kcat && o.runs("backup") {
				kc, err := runKcat(b.brokers, topic, rep.records)
				if err != nil {
					return err
				}
				kcats = append(kcats, kc)
			}
			if o.runs("backup") {
				sa, err := runSaramaAlone(b.brokers, topic, rep.records)
				if err != nil {
					return err
				}
				saramas = append(saramas, sa)
			}
			for _, codec := range codecs {
				name := "volume-" + codec
				if codec == "zstd" {
					name = "volume" // the restore's source
				}
				if round > 0 {
					name += fmt.Sprintf("-round%d", round+1)
				}
				r, vol, err := b.backupToVolume(name, codec, topic, partitions, rep.records)
				if err != nil {
					return err
				}
				if codec == "zstd" && round == 0 {
					zstdVolume = vol
				} else {
					_ = os.RemoveAll(vol) // the disk: keep only the restore's source
				}
				byCodec[codec] = append(byCodec[codec], r)
			}
			if o.runs("backup") {
				// The disk bounds a volume backup: its own speed in the
				// same rounds, as it drifts like the rest (the worker on
				// a volume in memory, below, shows what is the disk's and
				// what the worker's).
				dd, err := runDD(b.dir, rep.records*(valueSize+16), partitions)
				if err != nil {
					return err
				}
				dds = append(dds, dd)
				va, err := runVolumeAlone(b.ctx, b.dir, rep.records*(valueSize+16), partitions)
				if err != nil {
					return err
				}
				alones = append(alones, va)
			}
		}
		if len(kcats) > 0 {
			rep.backups = append(rep.backups, middleRun(kcats))
		}
		if len(saramas) > 0 {
			rep.backups = append(rep.backups, middleRun(saramas))
		}
		for _, codec := range codecs {
			r := middleRun(byCodec[codec])
			rep.backups = append(rep.backups, r)
			if codec == "zstd" {
				rep.rss = append(rep.rss, r)
			}
		}
		for _, runs := range [][]result{dds, alones} {
			if len(runs) > 0 {
				rep.backups = append(rep.backups, middleRun(runs))
			}
		}
	}
	if o.runs("backup") {
		if slices.Contains(strings.Split(o.codecs, ","), "none") {
			// none is not short of CPU here: what its goroutines wait
			// for says what holds it. One more run, traced, apart from
			// the runs timed above (tracing costs the worker some CPU).
			r, vol, err := b.backupToVolume("volume-none"+tracedSuffix, "none", topic, partitions, rep.records)
			if err != nil {
				return err
			}
			_ = os.RemoveAll(vol)
			waits, err := waitSummary(b.tracePath("backup-volume-none"+tracedSuffix), partitions, r.seconds, backupWaits)
			if err != nil {
				waits = err.Error() + "\n"
			}
			rep.noneWaits = &tracedRun{r, waits}
		}
		if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
			shm, err := os.MkdirTemp("/dev/shm", "armory-bench-")
			if err != nil {
				return err
			}
			defer os.RemoveAll(shm)
			saved := b.dir
			b.dir = shm
			for _, codec := range strings.Split(o.codecs, ",") {
				r, vol, err := b.backupToVolume("tmpfs-"+codec, codec, topic, partitions, rep.records)
				if err != nil {
					return err
				}
				_ = os.RemoveAll(vol) // memory: keep only one at a time
				rep.backups = append(rep.backups, r)
			}
			b.dir = saved
		}
		r, err := b.backupToGCS(rep.records)
		if err != nil {
			return err
		}
		rep.backups = append(rep.backups, r)
	}
	if o.runs("restore") {
		if rep.restores, err = b.restores(zstdVolume, rep.records, max(o.rounds, 1)); err != nil {
			return err
		}
	}
	if o.runs("rss") {
		const big = "bench.big"
		if err := cluster.CreateTopic(big, partitions, nil); err != nil {
			return err
		}
		records := rep.records * int64(o.rssFactor)
		fmt.Printf("producing %d records (%d MiB) to %s...\n", records, o.mib*o.rssFactor, big)
		if err := produce(b.brokers, big, partitions, records); err != nil {
			return err
		}
		r, _, err := b.backupToVolume("volume-big", "zstd", big, partitions, records)
		if err != nil {
			return err
		}
		rep.rss = append(rep.rss, r)
	}
	if o.runs("wide") {
		r, rr, err := b.wideBackup()
		if err != nil {
			return err
		}
		rep.wide, rep.wideRestore = append(rep.wide, r), &rr
	}

	if o.runs("controller") {
		r, err := b.controllerBench(o.ctrlBackups, o.ctrlNS, o.ctrlSteady)
		if err != nil {
			return err
		}
		rep.ctrl = &r
	}

	var segmentBench string
	if o.segmentBench != "" {
		data, _ := os.ReadFile(o.segmentBench)
		segmentBench = string(data)
	}
	text := renderReport(o, rep, segmentBench)
	fmt.Println(text)
	return os.WriteFile(o.out, []byte(text), 0o644)
}

// firstFaults is the page faults of the first worker among the results.
func firstFaults(results []result) int64 {
	for _, r := range results {
		if r.pageFaults > 0 {
			return r.pageFaults
		}
	}
	return 0
}

// middleRun is the run of the middle time (of an even count, the faster
// of the two middle ones), with every run's seconds beside it.
func middleRun(runs []result) result {
	sorted := slices.Clone(runs)
	slices.SortStableFunc(sorted, func(a, b result) int { return cmp.Compare(a.seconds, b.seconds) })
	r := sorted[(len(sorted)-1)/2]
	for _, run := range runs {
		r.rounds = append(r.rounds, run.seconds)
	}
	return r
}

// backupToVolume backs topic up into a new volume folder with codec.
func (b *bench) backupToVolume(name, codec, topic string, parts int, records int64) (result, string, error) {
	vol := filepath.Join(b.dir, name)
	vb, err := volume.New(vol)
	if err != nil {
		return result{}, "", err
	}
	r, err := b.runWorker(name, codec, []string{topic}, parts, "volume: {capacity: 10Gi}", vol, vb, records)
	return r, vol, err
}

func (b *bench) backupToGCS(records int64) (result, error) {
	srv, err := fakestorage.NewServerWithOptions(fakestorage.Options{Scheme: "http", Host: "127.0.0.1", Port: 0, Writer: io.Discard})
	if err != nil {
		return result{}, err
	}
	defer srv.Stop()
	srv.CreateBucketWithOpts(fakestorage.CreateBucketOpts{Name: "bench"})
	gb, err := gcs.New(b.ctx, gcs.Config{Bucket: "bench", Endpoint: srv.URL()})
	if err != nil {
		return result{}, err
	}
	defer gb.Close()
	return b.runWorker("gcs", "zstd", []string{topic}, partitions, fmt.Sprintf("gcsBucket: {bucket: bench, endpoint: %q}", srv.URL()), "", gb, records)
}

// restores writes the backup at vol into an empty topic, with kcat -P (the
// baseline) and with the restore worker, rounds times, interleaved, each
// round into a kfake cluster of its own; each is reported by its middle
// run.
func (b *bench) restores(vol string, records int64, rounds int) ([]result, error) {
	var files []string
	if b.kcat {
		var err error
		if files, err = dumpPartitions(b.brokers, b.dir); err != nil {
			return nil, err
		}
	}
	var kcats, workers []result
	for round := range rounds {
		kp, rr, err := b.restoreRound(vol, files, records, round)
		if err != nil {
			return nil, err
		}
		if kp != nil {
			kcats = append(kcats, *kp)
		}
		workers = append(workers, rr)
	}
	var out []result
	if len(kcats) > 0 {
		out = append(out, middleRun(kcats))
	}
	return append(out, middleRun(workers)), nil
}

// restoreRound runs kcat -P from files (when kcat is there) and the restore
// worker, each into an empty topic of a new cluster.
func (b *bench) restoreRound(vol string, files []string, records int64, round int) (*result, result, error) {
	target, err := kfake.NewCluster(kfake.NumBrokers(3), kfake.BrokerConfigs(map[string]string{"message.max.bytes": "8388608"}))
	if err != nil {
		return nil, result{}, err
	}
	defer target.Close()
	var kp *result
	if b.kcat {
		if err := target.CreateTopic("bench.kcat", partitions, nil); err != nil {
			return nil, result{}, err
		}
		r, err := runKcatProduce(target.ListenAddrs(), files, records)
		if err != nil {
			return nil, result{}, err
		}
		kp = &r
	}
	rr, err := b.runRestore(target.ListenAddrs(), vol, records, round)
	return kp, rr, err
}

// wideBackup backs up wideTopics topics of 3 partitions, wideMiB in all, on
// a cluster of their own, at the workers' memory budget, and checks every
// record is stored exactly once. Then it restores as many of those topics
// as one Restore takes into a cluster of their own and checks that the
// restored partitions hold the source's records.
func (b *bench) wideBackup() (backup, wideRestore result, err error) {
	cluster, err := kfake.NewCluster(kfake.NumBrokers(3), kfake.BrokerConfigs(map[string]string{"message.max.bytes": "8388608"}))
	if err != nil {
		return backup, wideRestore, err
	}
	defer cluster.Close()
	var topics []string
	for i := range b.wideTopics {
		t := fmt.Sprintf("wide.%03d", i)
		if err := cluster.CreateTopic(t, partitions, nil); err != nil {
			return backup, wideRestore, err
		}
		topics = append(topics, t)
	}
	perTopic := int64(b.wideMiB) << 20 / valueSize / int64(b.wideTopics)
	fmt.Printf("producing %d records to each of %d topics (%d MiB)...\n", perTopic, b.wideTopics, b.wideMiB)
	if err := produceTopics(cluster.ListenAddrs(), topics, partitions, perTopic); err != nil {
		return backup, wideRestore, err
	}
	vol := filepath.Join(b.dir, "wide")
	vb, err := volume.New(vol)
	if err != nil {
		return backup, wideRestore, err
	}
	saved := b.brokers
	b.brokers = cluster.ListenAddrs()
	backup, err = b.runWorker("wide", "zstd", topics, partitions, "volume: {capacity: 10Gi}", vol, vb, perTopic*int64(len(topics)))
	b.brokers = saved
	if err != nil {
		return backup, wideRestore, err
	}
	backup.name = fmt.Sprintf("armory worker --backup → volume (zstd), %d topics × %d partitions, %s", len(topics), partitions, b.budgetPhrase())
	if err := checkExactlyOnce(b.ctx, vb, topics, partitions, perTopic); err != nil {
		return backup, wideRestore, err
	}
	backup.checked = true

	restored := topics[:min(len(topics), maxRestoreTopics)]
	target, err := kfake.NewCluster(kfake.NumBrokers(3), kfake.BrokerConfigs(map[string]string{"message.max.bytes": "8388608"}))
	if err != nil {
		return backup, wideRestore, err
	}
	defer target.Close()
	var mapping strings.Builder
	for _, t := range restored {
		fmt.Fprintf(&mapping, "    - {source: %s, target: %s}\n", t, t)
	}
	fmt.Printf("armory worker --restore of %d topics from the wide backup...\n", len(restored))
	wideRestore, err = b.restoreWorker("bench-wide-restore", "wide-restore", target.ListenAddrs(), mapping.String(), vol, perTopic*int64(len(restored)))
	if err != nil {
		return backup, wideRestore, err
	}
	wideRestore.name = fmt.Sprintf("armory worker --restore ← volume (zstd), %d topics × %d partitions, transactions, createTopics", len(restored), partitions)
	if err := sameRecords(cluster.ListenAddrs(), target.ListenAddrs(), restored, partitions); err != nil {
		return backup, wideRestore, fmt.Errorf("the wide restore: %w", err)
	}
	wideRestore.checked = true
	return backup, wideRestore, nil
}

// maxRestoreTopics is the most topics one Restore maps (spec.config.topics'
// MaxItems).
const maxRestoreTopics = 100

// sameRecords reads every partition of topics from the source cluster and,
// read_committed, from the target, and fails unless each target partition
// holds the source's records (key, value, headers), in order, none missing
// or added. Partitions are read 16 at a time.
func sameRecords(source, target []string, topics []string, parts int) error {
	type part struct {
		topic string
		p     int32
	}
	work := make(chan part)
	errs := make(chan error, 1)
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for w := range work {
				if err := samePartition(source, target, w.topic, w.p); err != nil {
					select {
					case errs <- err:
					default:
					}
				}
			}
		})
	}
	for _, t := range topics {
		for p := range int32(parts) {
			work <- part{t, p}
		}
	}
	close(work)
	wg.Wait()
	select {
	case err := <-errs:
		return err
	default:
		return nil
	}
}

func samePartition(source, target []string, topic string, p int32) error {
	want, err := readPartition(source, topic, p, -1)
	if err != nil {
		return fmt.Errorf("reading %s/%d from the source: %w", topic, p, err)
	}
	got, err := readPartition(target, topic, p, len(want))
	if err != nil {
		return fmt.Errorf("reading %s/%d from the target: %w", topic, p, err)
	}
	if len(got) != len(want) {
		return fmt.Errorf("%s/%d: %d records restored, the source has %d", topic, p, len(got), len(want))
	}
	for i := range want {
		for f, field := range []string{"key", "value", "headers"} {
			if !bytes.Equal(got[i][f], want[i][f]) {
				return fmt.Errorf("%s/%d: record %d differs from the source's in its %s", topic, p, i, field)
			}
		}
	}
	return nil
}

// readPartition returns a partition's records (key, value, headers as one
// string), read_committed, from its start to its end offset. A partition
// written in transactions ends with commit markers, which no consumer
// sees: once expect records (when expect >= 0) have come, what follows
// them is waited for 1 s, so that one record more is still caught.
func readPartition(brokers []string, topic string, p int32, expect int) ([][3][]byte, error) {
	cfg := sarama.NewConfig()
	cfg.Version = kafka.Version
	cfg.Consumer.IsolationLevel = sarama.ReadCommitted
	cfg.Consumer.MaxWaitTime = 100 * time.Millisecond
	client, err := sarama.NewClient(brokers, cfg)
	if err != nil {
		return nil, err
	}
	defer client.Close()
	end, err := client.GetOffset(topic, p, sarama.OffsetNewest)
	if err != nil {
		return nil, err
	}
	consumer, err := sarama.NewConsumerFromClient(client)
	if err != nil {
		return nil, err
	}
	defer consumer.Close()
	pc, err := consumer.ConsumePartition(topic, p, sarama.OffsetOldest)
	if err != nil {
		return nil, err
	}
	defer pc.Close()
	var out [][3][]byte
	if end == 0 {
		return out, nil
	}
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		idle := 30 * time.Second // no record for this long: the read is stuck
		if expect >= 0 && len(out) >= expect {
			idle = time.Second // all expected: only markers, or one too many
		}
		timer.Reset(idle)
		select {
		case m := <-pc.Messages():
			var h strings.Builder
			for _, rh := range m.Headers {
				fmt.Fprintf(&h, "%q=%q;", rh.Key, rh.Value)
			}
			out = append(out, [3][]byte{m.Key, m.Value, []byte(h.String())})
			if m.Offset+1 >= end {
				return out, nil
			}
		case err := <-pc.Errors():
			return nil, err
		case <-timer.C:
			if expect >= 0 && len(out) >= expect {
				return out, nil // the rest up to the end offset are markers
			}
			return nil, fmt.Errorf("no record for %s after %d of them (end offset %d)", idle, len(out), end)
		}
	}
}

// produce writes records to topic's partitions, round robin.
func produce(brokers []string, topic string, parts int, records int64) error {
	return produceTopics(brokers, []string{topic}, parts, records)
}

// produceTopics writes records to each topic: record i has the key
// key-<i, 12 digits>, goes to partition i % parts, and has a 1000-byte value
// that compresses about as well as JSON events do.
func produceTopics(brokers []string, topics []string, parts int, records int64) error {
	cfg := sarama.NewConfig()
	cfg.Version = kafka.Version
	cfg.Producer.Return.Successes = true
	cfg.Producer.RequiredAcks = sarama.WaitForLocal
	cfg.Producer.Partitioner = sarama.NewManualPartitioner
	cfg.Producer.Flush.Bytes = 1 << 20
	cfg.Producer.Flush.Frequency = 10 * time.Millisecond
	cfg.Producer.MaxMessageBytes = 4 << 20
	cfg.Producer.Compression = sarama.CompressionLZ4
	p, err := sarama.NewAsyncProducer(brokers, cfg)
	if err != nil {
		return err
	}
	defer p.AsyncClose()
	rng := rand.New(rand.NewPCG(1, 2))
	words := strings.Fields("user order page view click cart checkout product search session device region price amount currency status")
	total := records * int64(len(topics))
	done := make(chan error, 1)
	go func() {
		var n int64
		for n < total {
			select {
			case <-p.Successes():
				n++
			case err := <-p.Errors():
				done <- err
				return
			}
		}
		done <- nil
	}()
	for i := range records {
		for _, t := range topics {
			var b strings.Builder
			for b.Len() < valueSize {
				fmt.Fprintf(&b, `"%s":%d,`, words[rng.IntN(len(words))], rng.IntN(100000))
			}
			value := []byte(b.String())[:valueSize]
			p.Input() <- &sarama.ProducerMessage{Topic: t, Partition: int32(i % int64(parts)),
				Key: sarama.StringEncoder(key(i)), Value: sarama.ByteEncoder(value), Timestamp: time.Now()}
		}
	}
	return <-done
}

func key(i int64) string { return fmt.Sprintf("key-%012d", i) }

// checkExactlyOnce decodes every stored segment of the topics: partition p
// must hold, from offset 0 with none missing or repeated, the records
// produceTopics sent it, in order (their keys say which).
func checkExactlyOnce(ctx context.Context, bkt storage.Bucket, topics []string, parts int, records int64) error {
	for _, t := range topics {
		for p := range int32(parts) {
			st, err := layout.ListPartition(ctx, bkt, t, p)
			if err != nil {
				return err
			}
			next := int64(0)
			for _, o := range st.Objects {
				r, err := bkt.Open(ctx, o.Name)
				if err != nil {
					return err
				}
				data, err := io.ReadAll(r)
				r.Close()
				if err != nil {
					return err
				}
				recs, _, err := segment.Decode(data, o.Name)
				if err != nil {
					return err
				}
				for _, rec := range recs {
					if rec.Offset != next || string(rec.Key) != key(next*int64(parts)+int64(p)) {
						return fmt.Errorf("%s/%d: offset %d key %q where offset %d key %q was due", t, p, rec.Offset, rec.Key, next, key(next*int64(parts)+int64(p)))
					}
					next++
				}
			}
			if want := (records - int64(p) + int64(parts) - 1) / int64(parts); next != want {
				return fmt.Errorf("%s/%d: %d records stored, %d produced", t, p, next, want)
			}
		}
	}
	return nil
}

func runKcat(brokers []string, topic string, records int64) (result, error) {
	fmt.Println("kcat -C to /dev/null...")
	cmd := exec.Command("kcat", "-C", "-b", strings.Join(brokers, ","), "-t", topic, "-o", "beginning", "-e", "-q", "-f", "%k%s\n")
	devnull, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		return result{}, err
	}
	defer devnull.Close()
	cmd.Stdout, cmd.Stderr = devnull, os.Stderr
	r, err := runReader(cmd)
	if errors.Is(err, exec.ErrNotFound) {
		return result{}, fmt.Errorf("kcat: %w (install it with apt-get install kcat)", err)
	} else if err != nil {
		return result{}, fmt.Errorf("kcat: %w", err)
	}
	r.name, r.records, r.bytes = "kcat -C > /dev/null (baseline)", records, records*(valueSize+16)
	return r, nil
}

// runReader runs a reader of the topic other than the worker to its end,
// and measures it: its time, peak RSS, CPU, and kfake's CPU and the steal
// meanwhile.
func runReader(cmd *exec.Cmd) (result, error) {
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return result{}, err
	}
	rss, steal, kfake := peakRSS(cmd.Process.Pid), stealMeter(), processCPU(os.Getpid())
	// Sample until the process is a zombie: wait for it only after.
	waitExited(cmd.Process.Pid)
	elapsed, kfakeCPU := time.Since(start).Seconds(), kfake()
	peak := rss()
	if err := cmd.Wait(); err != nil {
		return result{}, err
	}
	ps := cmd.ProcessState
	return result{seconds: elapsed, peakRSSMiB: peak, cpuSeconds: (ps.UserTime() + ps.SystemTime()).Seconds(),
		kfakeCPUSeconds: kfakeCPU, stealPct: steal()}, nil
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

// vmHWM is a process's peak resident set, in KiB.
func vmHWM(pid int) float64 { return procStatus(pid, "VmHWM:") }

// vmRSS is a process's resident set now, in KiB.
func vmRSS(pid int) float64 { return procStatus(pid, "VmRSS:") }

// procStatus reads a KiB figure of /proc/PID/status, or 0.
func procStatus(pid int, field string) float64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, field); ok {
			var kib float64
			fmt.Sscanf(strings.TrimSpace(rest), "%f", &kib)
			return kib
		}
	}
	return 0
}

// runWorker backs topics up with `armory worker --backup`, from its start
// to every record stored (its records_stored metric), SIGTERM telling it
// to drain once it has read them all (its records_read metric).
func (b *bench) runWorker(name, compression string, topics []string, parts int, storageSpec, storagePath string, bkt storage.Bucket, records int64) (result, error) {
	fmt.Printf("armory worker --backup to %s...\n", name)
	ns := "bench-" + name
	// compression is an algorithm, or algorithm-level.
	algorithm, level, _ := strings.Cut(compression, "-")
	compressionSpec, label := "{algorithm: "+algorithm+"}", algorithm
	if level != "" {
		compressionSpec, label = "{algorithm: "+algorithm+", level: "+level+"}", algorithm+", level "+level
	}
	var streams strings.Builder
	for _, t := range topics {
		fmt.Fprintf(&streams, "  - topic: %s\n", t)
	}
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
  compression: %s
  segmentRolloverTriggers: {timeoutSeconds: 1}
  streams:
%s`, strings.Join(b.brokers, ","), storageSpec, compressionSpec, streams.String())
	if err := applyIn(b.ctx, b.env, ns, manifest); err != nil {
		return result{}, err
	}
	metricsAddr, err := freeAddr()
	if err != nil {
		return result{}, err
	}
	args := []string{"worker", "--backup=bench", "--kubeconfig", b.env.Kubeconfig, "--namespace", ns,
		"--metrics-bind-address", metricsAddr, "--health-probe-bind-address", "0"}
	if storagePath != "" {
		args = append(args, "--storage-path", storagePath)
	}
	args = append(args, b.profileArgs("backup-"+name)...)
	if b.budget != "" {
		args = append(args, "--memory-budget", b.budget)
	}
	worker := exec.Command(b.armory, args...)
	logFile, removeLog, err := b.logFile("backup-" + name)
	if err != nil {
		return result{}, err
	}
	defer removeLog()
	worker.Stdout, worker.Stderr = logFile, logFile
	start := time.Now()
	if err := worker.Start(); err != nil {
		return result{}, err
	}
	rss, steal := peakRSS(worker.Process.Pid), stealMeter()
	cpu, kfake := cpuTime(worker.Process.Pid), processCPU(os.Getpid())
	// Like kcat -e, which exits at the end of the topic, the worker is told
	// to stop once it has read the last record: SIGTERM drains it, closing
	// and uploading its open segments at once. Without it the last segment
	// of each partition would wait for its rollover timeout, since a
	// continuous backup cannot know that the topic ended. The time runs on
	// until every record is stored.
	deadline := time.Now().Add(15 * time.Minute)
	stored, read, signalled := int64(0), int64(0), false
	for stored < records {
		if time.Now().After(deadline) {
			_ = worker.Process.Kill()
			return result{}, fmt.Errorf("the worker stored %d of %d records in 15 minutes", stored, records)
		}
		if signalled {
			time.Sleep(minPollPause) // the drain: tens of milliseconds
		} else {
			time.Sleep(pollPause(read, records, time.Since(start)))
		}
		var storedNow int64
		read, storedNow = workerCounters(metricsAddr)
		if !signalled && read >= records {
			_ = worker.Process.Signal(syscall.SIGTERM)
			signalled = true
		}
		if signalled && exited(worker.Process.Pid) {
			// It drained before its metrics showed every record stored:
			// it read some records twice (after a retry) and was told to
			// stop before it read them all. What storage lists, checked
			// below, says what it stored.
			break
		}
		stored = storedNow
	}
	elapsed := time.Since(start).Seconds()
	cpuSeconds, stolen, kfakeCPU, faults := cpu(), steal(), kfake(), minorFaults(worker.Process.Pid)
	if !signalled { // a second SIGTERM stops a worker at once
		_ = worker.Process.Signal(syscall.SIGTERM)
	}
	waitExited(worker.Process.Pid)
	peak := rss()
	log, _ := os.ReadFile(logFile.Name())
	if err := worker.Wait(); err != nil {
		return result{}, fmt.Errorf("worker: %w\n%s", err, tail(log))
	}
	// What storage holds, from its listing.
	where := strings.SplitN(name, "-", 2)[0]
	if where == "tmpfs" {
		where = "volume on tmpfs"
	}
	r := result{name: fmt.Sprintf("armory worker --backup → %s (%s)", where, label), seconds: elapsed,
		bytes: records * (valueSize + 16), peakRSSMiB: peak, cpuSeconds: cpuSeconds, profile: b.cpuProfile("backup-" + name),
		flowMBps: flowRate(log), stealPct: stolen, kfakeCPUSeconds: kfakeCPU, pageFaults: faults}
	var compressed int64
	for _, t := range topics {
		for p := range int32(parts) {
			st, err := layout.ListPartition(b.ctx, bkt, t, p)
			if err != nil {
				return result{}, err
			}
			r.records += st.Records
			r.segments += len(st.Objects)
			for _, o := range st.Objects {
				if a, err := bkt.Attributes(b.ctx, o.Name); err == nil {
					compressed += a.Size
				}
			}
		}
	}
	r.compressedMiB = float64(compressed) / (1 << 20)
	if r.records != records {
		return result{}, fmt.Errorf("%s: storage lists %d records, %d were produced", name, r.records, records)
	}
	return r, nil
}

// runDD writes n bytes into dir with dd, split over writers files written
// at once, each fsynced, as a backup's partitions write theirs: the disk's
// own write speed, which a volume backup cannot beat. (One dd alone is
// slower than the disk can go on a virtual machine's disk: a few writers
// keep more writes in flight.)
func runDD(dir string, n int64, writers int) (result, error) {
	fmt.Println("dd to the volume's disk...")
	count := n / int64(writers) / (64 << 10)
	var cmds []*exec.Cmd
	for i := range writers {
		f := filepath.Join(dir, fmt.Sprintf("dd-%d.bin", i))
		defer os.Remove(f)
		cmd := exec.Command("dd", "if=/dev/zero", "of="+f, "bs=64k", fmt.Sprintf("count=%d", count), "conv=fsync", "status=none")
		cmd.Stderr = os.Stderr
		cmds = append(cmds, cmd)
	}
	start, steal := time.Now(), stealMeter()
	var err error
	for _, cmd := range cmds {
		if err = cmd.Start(); err != nil {
			break
		}
	}
	for _, cmd := range cmds {
		if cmd.Process != nil {
			err = errors.Join(err, cmd.Wait())
		}
	}
	if err != nil {
		return result{}, fmt.Errorf("dd: %w", err)
	}
	return result{name: fmt.Sprintf("%d × dd bs=64k conv=fsync at once to the volume's disk, a file each (the disk's speed)", writers),
		seconds: time.Since(start).Seconds(), bytes: int64(writers) * count * (64 << 10), stealPct: steal()}, nil
}

// logFile is where a worker logs: kept beside the profiles with -profile,
// else removed afterwards.
func (b *bench) logFile(name string) (*os.File, func(), error) {
	if b.profileDir != "" {
		f, err := os.Create(filepath.Join(b.profileDir, name+".log"))
		return f, func() { f.Close() }, err
	}
	f, err := os.CreateTemp("", "armory-bench-"+name+"-*.log")
	if err != nil {
		return nil, nil, err
	}
	return f, func() { f.Close(); os.Remove(f.Name()) }, nil
}

// profileArgs are the flags that make a worker or the controller write its
// CPU and allocation profiles: into -profile's folder, else a scratch one
// (the report summarises some of them).
func (b *bench) profileArgs(name string) []string {
	args := []string{"--cpu-profile", b.cpuProfile(name), "--alloc-profile", filepath.Join(b.profiles(), name+".alloc.pprof")}
	if b.trace || strings.HasSuffix(name, tracedSuffix) {
		args = append(args, "--trace", b.tracePath(name))
	}
	return args
}

// tracedSuffix ends the name of a run traced even without -trace.
const tracedSuffix = "-traced"

func (b *bench) tracePath(name string) string { return filepath.Join(b.profiles(), name+".trace") }

func (b *bench) cpuProfile(name string) string { return filepath.Join(b.profiles(), name+".cpu.pprof") }

func (b *bench) profiles() string {
	if b.profileDir != "" {
		return b.profileDir
	}
	return filepath.Join(b.scratch, "profiles")
}

var (
	readLine   = regexp.MustCompile(`(?m)^armory_worker_records_read_total\{[^}]*\} (\S+)$`)
	storedLine = regexp.MustCompile(`(?m)^armory_worker_records_stored_total\{[^}]*\} (\S+)$`)
)

// metricsClient scrapes workers uncompressed: the bench scrapes far more
// often than Prometheus (every 15 s or more), and gzipping each page of a
// scrape every 10 ms had cost the worker about 0.2 CPU s of a 4 s backup
// (its profile's promhttp and compress/flate), time a deployed worker does
// not spend.
var metricsClient = &http.Client{Transport: &http.Transport{DisableCompression: true}, Timeout: 5 * time.Second}

// The bench polls a backup worker's metrics to tell it to stop at the end
// of the topic, but each scrape costs the worker CPU (promhttp gathering
// every metric family: 0.2 CPU s of a 4 s backup scraped every 10 ms,
// uncompressed, in a profile of 2026-12-07), which a deployed
// worker, scraped every 15 s or so, does not pay. So it polls often only
// near the end: pollPause is a quarter of the time the rest of the topic
// should take at the rate read so far, within these bounds. The SIGTERM
// then comes at most minPollPause, or a quarter of a misjudged remainder,
// after the last record is read; a few tens of scrapes a run, not hundreds.
const (
	minPollPause = 5 * time.Millisecond
	maxPollPause = 200 * time.Millisecond
)

func pollPause(read, records int64, since time.Duration) time.Duration {
	if read <= 0 || since <= 0 {
		return 4 * minPollPause // starting: nothing to go by yet
	}
	if read >= records {
		return minPollPause
	}
	left := time.Duration(float64(since) * float64(records-read) / float64(read))
	return min(max(left/4, minPollPause), maxPollPause)
}

// workerCounters is, from one scrape, the sums over its topics of a
// worker's records read and records stored, or zeros.
func workerCounters(addr string) (read, stored int64) {
	resp, err := metricsClient.Get("http://" + addr + "/metrics")
	if err != nil {
		return 0, 0
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	sum := func(line *regexp.Regexp) int64 {
		var n float64
		for _, m := range line.FindAllSubmatch(body, -1) {
			v, _ := strconv.ParseFloat(string(m[1]), 64)
			n += v
		}
		return int64(n)
	}
	return sum(readLine), sum(storedLine)
}

// freeAddr is a loopback address nothing listens on now.
func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// cpuTime returns a function that reads a running process's user + system
// CPU seconds (/proc/PID/stat).
func cpuTime(pid int) func() float64 {
	return func() float64 {
		fields := procStat(pid)
		if len(fields) < 13 {
			return 0
		}
		ut, _ := strconv.ParseFloat(fields[11], 64)
		st, _ := strconv.ParseFloat(fields[12], 64)
		return (ut + st) / 100 // USER_HZ
	}
}

// minorFaults is a process's minor page faults so far (minflt): mostly its
// first touches of memory it was given.
func minorFaults(pid int) int64 {
	fields := procStat(pid)
	if len(fields) < 8 {
		return 0
	}
	n, _ := strconv.ParseInt(fields[7], 10, 64)
	return n
}

// exited says whether a child process has exited (a zombie not yet
// waited for, or gone).
func exited(pid int) bool {
	fields := procStat(pid)
	return len(fields) == 0 || fields[0] == "Z"
}

// procStat is /proc/PID/stat's fields after the command's closing
// parenthesis (the state is the first), or nil.
func procStat(pid int) []string {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return nil
	}
	return strings.Fields(string(data[strings.LastIndexByte(string(data), ')')+1:]))
}

// pageFaultMicros is what this machine charges, in µs, for the first touch
// of a 4 KiB page of fresh memory: the median of three rounds of 32 MiB,
// mapped anew each time (no huge pages: the Go heap has none). 0 if it
// cannot be measured.
func pageFaultMicros() float64 {
	const size, page = 32 << 20, 4096
	var rounds []float64
	for range 3 {
		mem, err := unix.Mmap(-1, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_ANON|unix.MAP_PRIVATE)
		if err != nil {
			return 0
		}
		_ = unix.Madvise(mem, unix.MADV_NOHUGEPAGE)
		start := time.Now()
		for i := 0; i < size; i += page {
			mem[i] = 1
		}
		rounds = append(rounds, float64(time.Since(start).Microseconds())/(size/page))
		_ = unix.Munmap(mem)
	}
	slices.Sort(rounds)
	return rounds[1]
}

// stealNote explains the steal column.
const stealNote = "Steal % is the share of the VM's CPU time that the hypervisor gave to other guests during the run (`steal` in /proc/stat): " +
	"the run waited that long for cores it was due, so runs side by side compare fairly only at similar steal."

// stealMeter returns a function that says what share (percent) of the
// machine's CPU time since stealMeter was called was stolen by the
// hypervisor: on a shared VM the figures of a run with much steal are slower
// than the code.
func stealMeter() func() float64 {
	read := func() (steal, total float64) {
		data, err := os.ReadFile("/proc/stat")
		if err != nil {
			return 0, 0
		}
		line, _, _ := strings.Cut(string(data), "\n")
		f := strings.Fields(line) // cpu user nice system idle iowait irq softirq steal ...
		for i, v := range f[1:] {
			n, _ := strconv.ParseFloat(v, 64)
			if i < 8 {
				total += n
			}
			if i == 7 {
				steal = n
			}
		}
		return steal, total
	}
	s0, t0 := read()
	return func() float64 {
		s1, t1 := read()
		if t1 <= t0 {
			return 0
		}
		return 100 * (s1 - s0) / (t1 - t0)
	}
}

// processCPU returns a function that says how many CPU seconds process pid
// used since processCPU was called.
func processCPU(pid int) func() float64 {
	read := cpuTime(pid)
	start := read()
	return func() float64 { return read() - start }
}

func tail(b []byte) string {
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

// dumpPartitions writes each partition's keys and values (tab between) to
// a file in dir with kcat -C, for kcat -P to produce; not timed.
func dumpPartitions(source []string, dir string) ([]string, error) {
	var files []string
	for p := range partitions {
		f := filepath.Join(dir, fmt.Sprintf("partition-%d.txt", p))
		out, err := os.Create(f)
		if err != nil {
			return nil, err
		}
		cmd := exec.Command("kcat", "-C", "-b", strings.Join(source, ","), "-t", topic, "-p", fmt.Sprint(p), "-o", "beginning", "-e", "-q", "-f", "%k\t%s\n")
		cmd.Stdout, cmd.Stderr = out, os.Stderr
		err = cmd.Run()
		out.Close()
		if err != nil {
			return nil, fmt.Errorf("kcat -C: %w", err)
		}
		files = append(files, f)
	}
	return files, nil
}

// runKcatProduce times one `kcat -P` per partition (in parallel, acks=all,
// idempotent) producing each file into its partition of bench.kcat, an
// empty topic of the target cluster.
func runKcatProduce(target []string, files []string, records int64) (result, error) {
	fmt.Println("kcat -P from files (baseline)...")
	const restored = "bench.kcat"
	start, kfake, steal := time.Now(), processCPU(os.Getpid()), stealMeter()
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
	var peak, cpu float64
	for i, cmd := range cmds {
		waitExited(cmd.Process.Pid)
		peak += stops[i]()
		if err := cmd.Wait(); err != nil {
			return result{}, fmt.Errorf("kcat -P: %w", err)
		}
		cpu += (cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()).Seconds()
	}
	return result{name: fmt.Sprintf("%d × kcat -P from files, acks=all, idempotent (baseline)", partitions), seconds: time.Since(start).Seconds(),
		records: records, bytes: records * (valueSize + 16), peakRSSMiB: peak, cpuSeconds: cpu, kfakeCPUSeconds: kfake(), stealPct: steal()}, nil
}

// runRestore restores the volume backup with `armory worker --restore` into
// a topic it creates on the target cluster, from start to exit 0.
func (b *bench) runRestore(target []string, storagePath string, records int64, round int) (result, error) {
	fmt.Println("armory worker --restore from the volume...")
	ns, name := "bench-restore", "restore"
	if round > 0 {
		ns, name = fmt.Sprintf("%s-round%d", ns, round+1), fmt.Sprintf("%s-round%d", name, round+1)
	}
	r, err := b.restoreWorker(ns, name, target, fmt.Sprintf("    - {source: %s, target: bench.restored}\n", topic), storagePath, records)
	r.name = "armory worker --restore ← volume (zstd), transactions, createTopics"
	return r, err
}

// restoreWorker runs a Restore, in namespace ns, of the topics (YAML list
// items) from the volume at storagePath into the target cluster, and
// measures its worker; name names its profiles and log.
func (b *bench) restoreWorker(ns, name string, target []string, topics, storagePath string, records int64) (result, error) {
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
    topics:
%s`, strings.Join(target, ","), topics)
	if err := applyIn(b.ctx, b.env, ns, manifest); err != nil {
		return result{}, err
	}
	args := []string{"worker", "--restore=bench", "--kubeconfig", b.env.Kubeconfig, "--namespace", ns,
		"--storage-path", storagePath, "--metrics-bind-address", "0", "--health-probe-bind-address", "0"}
	worker := exec.Command(b.armory, append(args, b.profileArgs(name)...)...)
	logFile, removeLog, err := b.logFile(name)
	if err != nil {
		return result{}, err
	}
	defer removeLog()
	worker.Stdout, worker.Stderr = logFile, logFile
	start := time.Now()
	if err := worker.Start(); err != nil {
		return result{}, err
	}
	rss, steal, kfake := peakRSS(worker.Process.Pid), stealMeter(), processCPU(os.Getpid())
	cpu := cpuTime(worker.Process.Pid)
	waitExited(worker.Process.Pid)
	elapsed := time.Since(start).Seconds()
	cpuSeconds, stolen, kfakeCPU := cpu(), steal(), kfake()
	peak := rss()
	if err := worker.Wait(); err != nil {
		log, _ := os.ReadFile(logFile.Name())
		return result{}, fmt.Errorf("restore worker: %w\n%s", err, tail(log))
	}
	return result{seconds: elapsed, records: records,
		bytes: records * (valueSize + 16), peakRSSMiB: peak, cpuSeconds: cpuSeconds, profile: b.cpuProfile(name), stealPct: stolen,
		kfakeCPUSeconds: kfakeCPU}, nil
}

func renderReport(o options, rep *report, segmentBench string) string {
	var b strings.Builder
	host, _ := os.Hostname()
	fmt.Fprintf(&b, "# Benchmarks\n\nProduced by `make bench` (`go run ./scripts/bench %s`) on %s, %s, %d cores, %s; ",
		strings.Join(os.Args[1:], " "), time.Now().UTC().Format("2006-01-02"), runtime.GOARCH, runtime.NumCPU(), runtime.Version())
	fmt.Fprintf(&b, "host %q. Every figure below was printed by that run; rerun it to refresh this page. "+
		"MB/s counts keys and values (10^6 bytes). Peak RSS is the process's VmHWM (/proc/PID/status), sampled every 20 ms until it exits; "+
		"CPU is its user + system seconds until the last record was stored (backups) or it exited (restores).\n\n", host)
	ratio := func(r, base result) string {
		if base.seconds == 0 {
			return ""
		}
		return fmt.Sprintf("%.2f×", base.seconds/r.seconds)
	}
	if len(rep.backups) > 0 {
		fmt.Fprintf(&b, "## Backup of a %d MiB topic\n\n", o.mib)
		fmt.Fprintf(&b, "%d records (16-byte key, %d-byte JSON-like value), %d partitions, on kfake with 3 brokers sharing the machine's cores "+
			"with the reader, produced in lz4-compressed batches (as producers often send them), which every reader "+
			"decompresses. Each reader starts from the beginning of the topic; the worker's time runs from its start (API reads, Lease, "+
			"connecting) to every record stored (volume: fsynced files; GCS: fake-gcs-server in memory, a correctness stand-in, not a speed "+
			"reference), with the compression shown, the default 16 MiB segments, %s, and a 1 s rollover timeout. "+
			"As kcat -e exits at the end of the topic, the worker is told to stop when it has read the last record "+
			"(SIGTERM as soon as its armory_worker_records_read_total reaches the topic's records, polled with one uncompressed scrape of its metrics each time, every quarter of the time the rest of the topic should take at the rate so far, between 5 and 200 ms, so a few tens of scrapes a run): "+
			"it drains, closing and uploading every open segment at once, and its time ends when the last one is stored. "+
			"Without that, the last segment of each partition would wait for its rollover timeout: a continuous backup cannot know "+
			"that the topic ended. The row of sarama's consumer alone is the Kafka client the worker uses, in a process of its own, with the worker's "+
			"Kafka settings (read_committed, sarama's 1 MiB fetches and 256-record channels, which the worker's sizing gives 3 partitions at the "+
			"default budget), taking every record from its channel and dropping it: what reading costs a backup before any work of its own.", rep.records, valueSize, partitions, o.budgetPhrase())
		if rep.rounds > 1 {
			fmt.Fprintf(&b, " kcat -C, sarama's consumer alone, the backups to the disk volume, dd and the volume alone ran in %d rounds, each round every one of them once, in the order "+
				"of the table: each row is its middle run (the seconds of every run are in brackets, in the order they ran), all its other "+
				"figures from that run. The runs to tmpfs and GCS ran once.", rep.rounds)
		}
		b.WriteString("\n\n")
		base := result{}
		if strings.Contains(rep.backups[0].name, "baseline") {
			base = rep.backups[0]
		}
		b.WriteString("| reader | seconds | MB/s | records/s | vs kcat | CPU s | kfake CPU s | steal % | peak RSS MiB | stored MiB | segments | page faults |\n|---|---|---|---|---|---|---|---|---|---|---|---|\n")
		for _, r := range rep.backups {
			stored, segments := "", ""
			if r.segments > 0 {
				stored, segments = fmt.Sprintf("%.0f", r.compressedMiB), fmt.Sprint(r.segments)
			}
			perSecond, rss, faults := "", "", ""
			if r.pageFaults > 0 {
				faults = fmt.Sprint(r.pageFaults)
			}
			if r.records > 0 {
				perSecond = fmt.Sprintf("%.0f", float64(r.records)/r.seconds)
			}
			if r.peakRSSMiB > 0 {
				rss = fmt.Sprintf("%.0f", r.peakRSSMiB)
			}
			kfakeCPU := ""
			if r.kfakeCPUSeconds > 0 {
				kfakeCPU = fmt.Sprintf("%.1f", r.kfakeCPUSeconds)
			}
			fmt.Fprintf(&b, "| %s | %s | %.0f | %s | %s | %s | %s | %.0f | %s | %s | %s | %s |\n", r.name, roundSeconds(r),
				float64(r.bytes)/r.seconds/1e6, perSecond, ratio(r, base), cpuCell(r), kfakeCPU, r.stealPct, rss, stored, segments, faults)
		}
		b.WriteString("\nCPU s is the reader's own; kfake CPU s is the bench's process meanwhile, where kfake serves the records (and, for GCS, " +
			"the emulator stores them): both share the 2 cores. " + stealNote + " The dd row is the disk's speed for buffered writes and " +
			"one fsync a file; the volume-alone row is the volume storing as many bytes the way a backup does (16 MiB segments from memory, " +
			"unbuffered vectored writes, an fsync of each and of its folder after the link), with nothing else running: a volume backup " +
			"stores no faster.\n")
		if rep.faultMicros > 0 {
			fmt.Fprintf(&b, "\nPage faults are the worker's minor faults until its last record was stored (minflt in /proc/PID/stat): nearly all "+
				"are the first touches of the memory it grows into, up to about its budget (docs/worker.md, Memory), paid once per process. "+
				"On this machine the first touch of a 4 KiB page of fresh memory costs %.1f µs (measured by the bench before the backups: "+
				"touching 32 MiB newly mapped, the median of three), so the %d faults of the first worker above are about %.1f CPU s of its run.\n",
				rep.faultMicros, firstFaults(rep.backups), float64(firstFaults(rep.backups))*rep.faultMicros/1e6)
		}
	}
	if len(rep.backups) > 0 {
		b.WriteString("\n### While records flow\n\nEvery worker run above pays some costs once: its start (process, API reads, Lease, " +
			"connecting, the first segments filling) and, at the end, the drain that closes and uploads the last segment of each " +
			"partition. Without them: the uncompressed bytes of the segments stored between the " +
			"first segment stored and the last full one (16 MiB, closed by size), over that time, from the worker's log " +
			"(\"Uploaded segment\" lines); kcat's figure is its whole run.\n\n")
		b.WriteString("| reader | MB/s while records flow | vs kcat |\n|---|---|---|\n")
		var base float64
		if strings.Contains(rep.backups[0].name, "baseline") {
			base = float64(rep.backups[0].bytes) / rep.backups[0].seconds / 1e6
			fmt.Fprintf(&b, "| %s | %.0f | 1.00× |\n", rep.backups[0].name, base)
		}
		for _, r := range rep.backups {
			if r.flowMBps == 0 {
				continue
			}
			vs := ""
			if base > 0 {
				vs = fmt.Sprintf("%.2f×", r.flowMBps/base)
			}
			fmt.Fprintf(&b, "| %s | %.0f | %s |\n", r.name, r.flowMBps, vs)
		}
	}
	if len(rep.backups) > 0 {
		b.WriteString("\n### Where a backup's CPU goes\n\nEvery worker above ran with `--cpu-profile`; `go tool pprof -top -cum` of these " +
			"profiles, by part (cumulative seconds of the function standing for it; the parts overlap nowhere but where marked …). kfake, " +
			"serving the records, runs in the bench's own process on the same 2 cores.\n")
		// Each codec on the disk (the targets below are set for those),
		// and zstd and none on tmpfs too (where the disk's speed is out of
		// the way).
		profiled := []string{"→ volume (zstd)", "→ volume on tmpfs (zstd)", "→ volume (lz4)", "→ volume (none)", "→ volume on tmpfs (none)"}
		for _, r := range rep.backups {
			if !slices.ContainsFunc(profiled, func(suffix string) bool { return strings.HasSuffix(r.name, suffix) }) {
				continue
			}
			table, err := profileSummary(r.profile, backupCPUParts)
			if err != nil {
				table = err.Error() + "\n"
			}
			fmt.Fprintf(&b, "\n%s, %.1f s:\n\n%s", r.name, r.seconds, table)
		}
		b.WriteString(renderTargets(rep.backups, runtime.NumCPU(), rep.faultMicros))
		if w := rep.noneWaits; w != nil {
			fmt.Fprintf(&b, "\n### Where a none backup waits\n\nOne more backup to the disk volume with none, as above but with `--trace`, "+
				"after the runs above and not in their tables (tracing costs the worker some CPU): %.1f s, %.1f CPU s. From its execution trace "+
				"(`go tool trace -pprof=sync`, `syscall` and `sched`, then `go tool pprof -top -cum`), the time goroutines spent blocked, in "+
				"system calls, or ready to run without a core, by the function standing for it, shared out over the %d partitions where it says "+
				"each (each partition leads on a broker of its own, so sarama runs a fetch loop for each); the drain's last uploads included. "+
				"The trace runs from the worker's start to its exit, a little past the timed end. A partition's goroutine blocked on its channel "+
				"is a partition with no record to take: what it waits for is upstream, in sarama or Kafka.\n\n%s",
				w.seconds, w.cpuSeconds, partitions, w.waits)
		}
	}
	if len(rep.restores) > 0 {
		fmt.Fprintf(&b, "\n## Restore of that backup\n\nThe zstd volume backup above restored into an empty topic of a second kfake cluster (3 brokers, same machine). "+
			"The baseline is one `kcat -P` per partition (run in parallel, acks=all, idempotent, librdkafka defaults otherwise) writing the same keys and "+
			"values from files that `kcat -C` dumped beforehand (the dump is not timed). The worker's time runs from its start (API reads, Lease, planning, "+
			"creating the topic, the exactly-once claim) to its exit after the last transaction committed; transactions at the defaults. "+
			"Peak RSS of the baseline is the sum of its processes'.")
		if n := len(rep.restores[len(rep.restores)-1].rounds); n > 1 {
			fmt.Fprintf(&b, " The writers ran in %d rounds, interleaved, each round into a kfake cluster of its own: each row is its middle run "+
				"(the seconds of every run are in brackets, in the order they ran), all its other figures from that run.", n)
		}
		b.WriteString("\n\n")
		base := result{}
		if strings.Contains(rep.restores[0].name, "baseline") {
			base = rep.restores[0]
		}
		b.WriteString("| writer | seconds | MB/s | records/s | vs kcat -P | CPU s | kfake CPU s | steal % | peak RSS MiB |\n|---|---|---|---|---|---|---|---|---|\n")
		for _, r := range rep.restores {
			fmt.Fprintf(&b, "| %s | %s | %.0f | %.0f | %s | %s | %.1f | %.0f | %.0f |\n", r.name, roundSeconds(r), float64(r.bytes)/r.seconds/1e6,
				float64(r.records)/r.seconds, ratio(r, base), cpuCell(r), r.kfakeCPUSeconds, r.stealPct, r.peakRSSMiB)
		}
		b.WriteString("\nCPU s is the writer's own (all its processes for kcat); kfake CPU s is the bench's process meanwhile, where the " +
			"target cluster runs: both share the 2 cores. " + stealNote + "\n")
		for _, r := range rep.restores {
			if r.profile == "" {
				continue
			}
			table, err := profileSummary(r.profile, restoreCPUParts)
			if err != nil {
				table = err.Error() + "\n"
			}
			fmt.Fprintf(&b, "\n### Where the restore's CPU goes\n\n`go tool pprof -top -cum` of the worker's `--cpu-profile`, by part, as for the backups, %.1f s:\n\n%s", r.seconds, table)
		}
	}
	if len(rep.rss) == 2 {
		small, big := rep.rss[0], rep.rss[1]
		fmt.Fprintf(&b, "\n## Memory does not grow with the topic\n\nThe zstd volume backup of the %d MiB topic above, and the same backup "+
			"(same settings) of a topic %d times larger:\n\n", o.mib, o.rssFactor)
		b.WriteString("| topic | records | seconds | MB/s | peak RSS MiB |\n|---|---|---|---|---|\n")
		for i, r := range []result{small, big} {
			fmt.Fprintf(&b, "| %d MiB | %d | %.1f | %.0f | %.0f |\n", o.mib*[]int{1, o.rssFactor}[i], r.records, r.seconds, float64(r.bytes)/r.seconds/1e6, r.peakRSSMiB)
		}
		fmt.Fprintf(&b, "\nPeak RSS ratio, %d× the data: **%.2f**.", o.rssFactor, big.peakRSSMiB/small.peakRSSMiB)
		if o.budget == "" {
			b.WriteString(" " + againstBound(max(small.peakRSSMiB, big.peakRSSMiB)))
		}
		b.WriteString("\n")
	}
	if len(rep.wide) > 0 {
		r := rep.wide[0]
		fmt.Fprintf(&b, "\n## A wide backup: %d topics × %d partitions\n\n%d MiB of the same records across %d partitions on a kfake cluster of "+
			"their own, backed up to a volume at %s, zstd, 16 MiB segments, 1 s rollover timeout. ",
			o.wideTopics, partitions, o.wideMiB, o.wideTopics*partitions, o.budgetPhrase())
		if r.checked {
			b.WriteString("After the run every stored segment was decoded: each partition holds its records from offset 0, in order, none missing or repeated.")
		}
		b.WriteString("\n\n| backup | records | seconds | MB/s | CPU s | peak RSS MiB | stored MiB | segments |\n|---|---|---|---|---|---|---|---|\n")
		fmt.Fprintf(&b, "| %s | %d | %.1f | %.0f | %s | %.0f | %.0f | %d |\n", r.name, r.records, r.seconds, float64(r.bytes)/r.seconds/1e6,
			cpuCell(r), r.peakRSSMiB, r.compressedMiB, r.segments)
		if o.budget == "" {
			b.WriteString("\n" + againstBound(r.peakRSSMiB) + "\n")
		}
	}
	if rr := rep.wideRestore; rr != nil && rr.seconds > 0 {
		n := min(o.wideTopics, maxRestoreTopics)
		fmt.Fprintf(&b, "\n### Restoring it\n\nThe first %d of those topics (%d partitions; one Restore maps at most %d topics) restored from that "+
			"backup into a kfake cluster of their own: createTopics, transactions and --parallel-partitions (%d) at the defaults. ",
			n, n*partitions, maxRestoreTopics, restore.DefaultParallel)
		if rr.checked {
			b.WriteString("After the run every restored partition was read (read_committed) beside its source: the same records (key, value, " +
				"headers), in order, none missing or added.")
		}
		b.WriteString("\n\n| restore | records | seconds | MB/s | CPU s | kfake CPU s | peak RSS MiB |\n|---|---|---|---|---|---|---|\n")
		fmt.Fprintf(&b, "| %s | %d | %.1f | %.0f | %s | %.1f | %.0f |\n", rr.name, rr.records, rr.seconds, float64(rr.bytes)/rr.seconds/1e6,
			cpuCell(*rr), rr.kfakeCPUSeconds, rr.peakRSSMiB)
	}
	if c := rep.ctrl; c != nil {
		fmt.Fprintf(&b, "\n## The controller with %d Backups\n\n%d Backups across %d namespaces (each namespace with its EventHub and Storage), "+
			"created before `armory controller` starts, on the real kube-apiserver and etcd of this machine. Reconciled: every Backup has its "+
			"Deployment, ServiceAccount, Role and RoleBinding, and a status for its generation (the workers do not run: no kubelet). "+
			"Then %s of steady state, nothing changing; requests counted by the controller's `armory_kube_api_requests_total` "+
			"(client-go's own count; watches count when they end).\n\n", c.backups, c.backups, c.namespaces, c.steady)
		b.WriteString("| seconds to reconcile every Backup | CPU s meanwhile | peak RSS MiB | steady: writes/min | steady: reads/min | steady: CPU s/min | steady RSS MiB |\n|---|---|---|---|---|---|---|\n")
		fmt.Fprintf(&b, "| %.1f | %.1f | %.0f | %.1f | %.1f | %.2f | %.0f |\n", c.reconciled, c.cpuSeconds, c.peakRSSMiB,
			c.writesPerMinute, c.readsPerMinute, c.steadyCPUPerMinute, c.steadyRSSMiB)
	}
	if segmentBench != "" {
		b.WriteString("\n## Segment codec\n\n`go test -run '^$' -bench . -benchmem ./pkg/segment` (10,000 records of 1 KiB JSON, a key and a header; ratio = uncompressed / encoded). " +
			"Each encodes one segment as one partition does: blocks compressed aside on up to one goroutine per core; " +
			"`-inline` rows compress every block on the goroutine appending the records, the codec's speed on one core:\n\n```\n")
		b.WriteString(strings.TrimSpace(segmentBench))
		b.WriteString("\n```\n")
	}
	return b.String()
}

// roundSeconds is a result's seconds, and those of every round it is the
// middle run of.
func roundSeconds(r result) string {
	seconds := fmt.Sprintf("%.1f", r.seconds)
	if len(r.rounds) > 1 {
		each := make([]string, len(r.rounds))
		for i, s := range r.rounds {
			each[i] = fmt.Sprintf("%.1f", s)
		}
		seconds += " (" + strings.Join(each, ", ") + ")"
	}
	return seconds
}

func cpuCell(r result) string {
	if r.cpuSeconds == 0 {
		return ""
	}
	return fmt.Sprintf("%.1f", r.cpuSeconds)
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

// uploadLine is a worker's "Uploaded segment" log line: its klog time, and
// the segment's partition and uncompressed bytes.
var uploadLine = regexp.MustCompile(`^I\d{4} (\d\d:\d\d:\d\d\.\d{6}) .*"Uploaded segment".* topic="([^"]+)" partition=(\d+) .* bytes=(\d+) `)

// flowRate is a backup's MB/s while records flow, from its log: the bytes
// of the segments stored after the first one, up to the last segment closed
// by size, over the time between those two uploads. The last segment of
// each partition (closed by its rollover timeout, or the drain) is left
// out, and with it the wait for it. 0 when there are too few segments.
func flowRate(log []byte) float64 {
	type upload struct {
		at    time.Time
		bytes int64
	}
	last := map[string]int{} // partition → index of its last upload
	var ups []upload
	for _, line := range strings.Split(string(log), "\n") {
		m := uploadLine.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		at, err := time.Parse("15:04:05.000000", m[1])
		n, _ := strconv.ParseInt(m[4], 10, 64)
		if err != nil {
			continue
		}
		last[m[2]+"/"+m[3]] = len(ups)
		ups = append(ups, upload{at, n})
	}
	drop := map[int]bool{}
	for _, i := range last {
		drop[i] = true
	}
	var full []upload
	for i, u := range ups {
		if !drop[i] {
			full = append(full, u)
		}
	}
	if len(full) < 3 {
		return 0
	}
	sort.Slice(full, func(i, j int) bool { return full[i].at.Before(full[j].at) })
	var bytes int64
	for _, u := range full[1:] {
		bytes += u.bytes
	}
	span := full[len(full)-1].at.Sub(full[0].at).Seconds()
	if span <= 0 {
		return 0
	}
	return float64(bytes) / span / 1e6
}

// rssOverBudgetMiB is docs/worker.md's constant: a backup worker's peak RSS
// stays under its --memory-budget plus this.
const rssOverBudgetMiB = 96

// againstBound compares a peak RSS at the default budget with
// docs/worker.md's bound, budget + rssOverBudgetMiB.
func againstBound(peakMiB float64) string {
	want := float64(worker.DefaultMemoryBudget>>20) + rssOverBudgetMiB
	verdict := "within it"
	if peakMiB > want {
		verdict = fmt.Sprintf("over it by %.0f MiB", peakMiB-want)
	}
	return fmt.Sprintf("docs/worker.md's bound at the default budget, %d MiB + %d MiB, is %.0f MiB: the peak (%.0f MiB) is %s.",
		worker.DefaultMemoryBudget>>20, rssOverBudgetMiB, want, peakMiB, verdict)
}
