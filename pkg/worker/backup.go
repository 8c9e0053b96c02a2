// Package worker runs one Backup: it takes the Backup's Lease, then backs up
// every enabled stream into the Backup's Storage, following the Backup as it
// changes, and reports progress in its status.
package worker

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/IBM/sarama"
	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	applymetav1 "k8s.io/client-go/applyconfigurations/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"

	"github.com/kannika/armory/apis/kannika/v1alpha"
	applyv1alpha "github.com/kannika/armory/generated/applyconfiguration/kannika/v1alpha"
	"github.com/kannika/armory/generated/clientset/versioned"
	"github.com/kannika/armory/pkg/backupspec"
	"github.com/kannika/armory/pkg/credentials"
	"github.com/kannika/armory/pkg/kafka"
	"github.com/kannika/armory/pkg/leader"
	"github.com/kannika/armory/pkg/segment"
	"github.com/kannika/armory/pkg/storage"
	"github.com/kannika/armory/pkg/workerlease"
)

// DefaultStoragePath is where the controller mounts a volume Storage.
const DefaultStoragePath = workerlease.DefaultStoragePath

// Segment rollover defaults, when a Backup sets none.
const (
	DefaultRolloverSize    = 16 << 20 // 16 MiB of uncompressed record bytes
	DefaultRolloverTimeout = 60 * time.Second
)

// BackupOptions configure a Backup worker.
type BackupOptions struct {
	Kube      kubernetes.Interface
	Armory    versioned.Interface
	Namespace string
	Name      string
	// Identity names this worker in the Lease: the pod's name.
	Identity string
	// StoragePath is where a volume Storage is mounted.
	StoragePath string
	Lease       leader.Timings
	// StatusInterval is how often progress is written to the status.
	StatusInterval time.Duration
	// Recheck is how often new partitions are looked for and failed
	// streams checked again.
	Recheck time.Duration
	// MemoryBudget bounds the bytes the worker buffers (segments and Kafka
	// fetches), whatever the number of partitions; 0 is DefaultMemoryBudget.
	MemoryBudget int64
	Registry     prometheus.Registerer
	// Ready is told when the worker starts and stops backing up.
	Ready func(bool)
}

// RunBackup runs the Backup until ctx ends (SIGTERM: open segments are
// uploaded first) or its Lease is lost (writing stops at once).
func RunBackup(ctx context.Context, o BackupOptions) error {
	m := newMetrics(o.Registry)
	held := func(h bool) {
		if h {
			m.leaseHeld.Set(1)
		} else {
			m.leaseHeld.Set(0)
		}
		if o.Ready != nil {
			o.Ready(h)
		}
	}
	// Check the Backup exists before taking its Lease: a wrong name or
	// namespace says so at once and leaves no stray Lease behind.
	if _, err := o.Armory.KannikaV1alpha().Backups(o.Namespace).Get(ctx, o.Name, metav1.GetOptions{}); err != nil {
		return fmt.Errorf("read Backup %s/%s: %w", o.Namespace, o.Name, err)
	}
	lease := leader.Config{Kube: o.Kube, Namespace: o.Namespace, Name: workerlease.ForBackup(o.Name), Identity: o.Identity,
		Labels: workerlease.BackupLabels(o.Name), Timings: o.Lease, Held: held}
	return leader.Run(ctx, lease, func(ctx context.Context, drain <-chan struct{}) error {
		return runBackup(ctx, drain, o, m)
	})
}

// backupRun is one Backup being backed up, while the Lease is held.
type backupRun struct {
	opts   BackupOptions
	bucket storage.Bucket
	// client asks the cluster about topics (metadata, configs, offsets);
	// the consumer fetches over connections of its own (fetchClient): a
	// broker answers each connection's requests in order, so a question
	// sent behind a fetch waiting for records (fetch.max.wait.ms) would
	// wait as long, and every upload asks one (the topic's id).
	client      sarama.Client
	fetchClient sarama.Client
	consumer    sarama.Consumer
	metrics     *metrics
	progress    *progress
	budget      *memoryBudget

	streams map[string]*runningStream
	wg      sync.WaitGroup
}

type runningStream struct {
	spec  v1alpha.BackupStream
	drain chan struct{}
	done  chan struct{}
}

func runBackup(ctx context.Context, drain <-chan struct{}, o BackupOptions, m *metrics) error {
	logger := klog.FromContext(ctx).WithValues("backup", klog.KRef(o.Namespace, o.Name))
	ctx = klog.NewContext(ctx, logger)
	b, err := o.Armory.KannikaV1alpha().Backups(o.Namespace).Get(ctx, o.Name, metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("read Backup %s/%s: %w", o.Namespace, o.Name, err)
	}
	if o.MemoryBudget <= 0 {
		o.MemoryBudget = DefaultMemoryBudget
	}
	r := &backupRun{opts: o, metrics: m, progress: newProgress(m), streams: map[string]*runningStream{},
		budget: newMemoryBudget(o.MemoryBudget)}
	err = r.connect(ctx, drain, b)
	if errors.Is(err, errStoppedConnecting) || ctx.Err() != nil {
		logger.Info("Stopped while connecting")
		r.close()
		return nil
	}
	// What stopped the worker must reach `kubectl get`, not only its log.
	reportConnected(ctx, o, b, err)
	if err != nil {
		r.close()
		return err
	}
	defer r.close()

	reportCtx, stopReport := context.WithCancel(ctx)
	reported := make(chan struct{})
	go func() {
		defer close(reported)
		r.progress.report(reportCtx, o.Armory, o.Name, o.Namespace, o.StatusInterval, func() bool { return ctx.Err() == nil })
	}()
	defer func() { stopReport(); <-reported }()

	// Follow the Backup: streams enabled, disabled, added, removed, changed.
	changes := make(chan *v1alpha.Backup, 1)
	r.watchBackup(ctx, changes)
	r.reconcile(ctx, b)
	for {
		select {
		case <-ctx.Done(): // Lease lost: partitions stop at once
			// Not waiting for the watch: it writes nothing, and client-go's
			// reflector sleeps out its backoff (seconds, whatever the
			// context) when the API server is down, which is when a Lease
			// is lost. Its last sends go to a buffer no one reads.
			r.wg.Wait()
			return nil
		case <-drain:
			logger.Info("Stopping: uploading open segments")
			r.progress.workerStopping(time.Now())
			r.stopAll()
			r.wg.Wait()
			logger.Info("Stopped: every open segment is uploaded")
			return nil
		case nb := <-changes:
			if nb == nil {
				logger.Info("The Backup was deleted: stopping")
				r.stopAll()
				r.wg.Wait()
				return nil
			}
			r.reconcile(ctx, nb)
		}
	}
}

// errStoppedConnecting: SIGTERM or a lost Lease ended the worker while it
// was connecting to Kafka.
var errStoppedConnecting = errors.New("stopped while connecting to Kafka")

// connect opens the Storage and the Kafka cluster the Backup names, with the
// Credentials it references, read now.
func (r *backupRun) connect(ctx context.Context, drain <-chan struct{}, b *v1alpha.Backup) error {
	o := r.opts
	creds := credentials.Reader{Kube: o.Kube, Armory: o.Armory, Namespace: o.Namespace}
	eh, err := o.Armory.KannikaV1alpha().EventHubs(o.Namespace).Get(ctx, b.Spec.Source, metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("spec.source: read EventHub %q: %w", b.Spec.Source, err)
	}
	st, err := o.Armory.KannikaV1alpha().Storages(o.Namespace).Get(ctx, b.Spec.Sink, metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("spec.sink: read Storage %q: %w", b.Spec.Sink, err)
	}
	sourceCreds, err := creds.Get(ctx, "spec.sourceCredentialsFrom", b.Spec.SourceCredentialsFrom)
	if err != nil {
		return err
	}
	sinkCreds, err := creds.Get(ctx, "spec.sinkCredentialsFrom", b.Spec.SinkCredentialsFrom)
	if err != nil {
		return err
	}

	if r.bucket, err = creds.OpenStorage(ctx, st, "spec.sinkCredentialsFrom", sinkCreds, o.StoragePath); err != nil {
		return fmt.Errorf("cannot open Storage %q: %w", st.Name, err)
	}
	if err := storage.Probe(ctx, r.bucket); err != nil {
		return fmt.Errorf("cannot use Storage %q (%s): %w", st.Name, r.bucket.Location(), err)
	}

	auth, err := creds.KafkaAuth(ctx, sourceCreds)
	if err != nil {
		return fmt.Errorf("spec.sourceCredentialsFrom: %w", err)
	}
	settings, err := kafka.NewSettings(eh.Spec.Kafka.Properties, auth)
	if err != nil {
		return fmt.Errorf("EventHub %q: %w", eh.Name, err)
	}
	// SIGTERM (drain) ends the connecting too: nothing is open to upload yet.
	connect := func() (sarama.Client, error) {
		c, err := kafka.Connect(ctx, drain, settings)
		if err == nil {
			return c, nil
		}
		if errors.Is(err, kafka.ErrStopped) || ctx.Err() != nil {
			return nil, errStoppedConnecting // not Kafka's fault
		}
		return nil, fmt.Errorf("cannot reach Kafka at %s: %w; check spec.kafka.properties[bootstrap.servers] of EventHub %q and the cluster's listeners",
			strings.Join(settings.Brokers, ","), err, eh.Name)
	}
	if r.client, err = connect(); err != nil {
		return err
	}
	if _, set := eh.Spec.Kafka.Properties["max.partition.fetch.bytes"]; !set {
		r.sizeConsumer(ctx, b, settings.Config)
	}
	if r.fetchClient, err = connect(); err != nil {
		return err
	}
	if r.consumer, err = sarama.NewConsumerFromClient(r.fetchClient); err != nil {
		return fmt.Errorf("Kafka consumer: %w", err)
	}
	klog.FromContext(ctx).Info("Connected", "kafka", settings.Brokers, "storage", r.bucket.Location())
	return nil
}

// sizeConsumer fits sarama's fetch buffers into the memory budget, for the
// partitions of the Backup's enabled streams now (a topic not found counts
// one). It runs before the consumer and its client exist; r.client, made
// before it, reads only its Net and Metadata settings, so changing the
// Consumer ones is safe.
func (r *backupRun) sizeConsumer(ctx context.Context, b *v1alpha.Backup, cfg *sarama.Config) {
	partitions := 0
	for _, s := range b.Spec.Streams {
		if s.Enabled != nil && !*s.Enabled {
			continue
		}
		ps, err := r.client.Partitions(s.Topic)
		partitions += max(len(ps), 1)
		_ = err // a missing topic is reported by its stream
	}
	fetch, fetchMax, channel := consumerSizing(r.opts.MemoryBudget, partitions, len(r.client.Brokers()))
	cfg.Consumer.Fetch.Default, cfg.Consumer.Fetch.Max, cfg.ChannelBufferSize = fetch, fetchMax, channel
	klog.FromContext(ctx).V(1).Info("Sized the Kafka consumer for the memory budget", "budget", r.opts.MemoryBudget,
		"partitions", partitions, "fetchBytesPerPartition", fetch, "fetchBytesPerResponse", fetchMax, "channelRecords", channel)
}

func (r *backupRun) close() {
	if r.consumer != nil {
		_ = r.consumer.Close()
	}
	if r.fetchClient != nil {
		_ = r.fetchClient.Close()
	}
	if r.client != nil {
		_ = r.client.Close()
	}
	if r.bucket != nil {
		_ = r.bucket.Close()
	}
}

// watchBackup sends each new version of the Backup on changes (nil once
// deleted) until ctx ends. Sends never block: changes keeps only the newest.
func (r *backupRun) watchBackup(ctx context.Context, changes chan *v1alpha.Backup) {
	lw := cache.NewListWatchFromClient(r.opts.Armory.KannikaV1alpha().RESTClient(), "backups", r.opts.Namespace,
		fields.OneTermEqualSelector("metadata.name", r.opts.Name))
	send := func(b *v1alpha.Backup) {
		select { // keep only the newest
		case <-changes:
		default:
		}
		changes <- b
	}
	_, informer := cache.NewInformerWithOptions(cache.InformerOptions{
		ListerWatcher: lw,
		ObjectType:    &v1alpha.Backup{},
		Handler: cache.ResourceEventHandlerFuncs{
			AddFunc:    func(obj any) { send(obj.(*v1alpha.Backup)) },
			UpdateFunc: func(_, obj any) { send(obj.(*v1alpha.Backup)) },
			DeleteFunc: func(any) { send(nil) },
		},
	})
	go informer.RunWithContext(ctx)
}

// reconcile starts enabled streams, stops disabled or removed ones (their
// open segments are uploaded first), and restarts streams whose settings
// changed.
func (r *backupRun) reconcile(ctx context.Context, b *v1alpha.Backup) {
	logger := klog.FromContext(ctx)
	wanted := map[string]v1alpha.BackupStream{}
	if b.Spec.Enabled == nil || *b.Spec.Enabled {
		for _, s := range b.Spec.Streams {
			if s.Enabled == nil || *s.Enabled {
				wanted[s.Topic] = backupspec.Stream(b, s)
			}
		}
	}
	inSpec := map[string]bool{}
	for _, s := range b.Spec.Streams {
		inSpec[s.Topic] = true
	}
	for topic, rs := range r.streams {
		spec, ok := wanted[topic]
		if ok && equality.Semantic.DeepEqual(spec, rs.spec) {
			continue
		}
		logger.Info("Stream disabled or changed: uploading its open segments, then stopping it", "topic", topic)
		close(rs.drain)
		<-rs.done
		delete(r.streams, topic)
		if !inSpec[topic] {
			r.progress.forget(topic)
		}
	}
	for topic, spec := range wanted {
		if _, ok := r.streams[topic]; ok {
			continue
		}
		settings, err := segmentSettingsOf(spec)
		if err != nil {
			r.progress.setStream(topic, StreamFailed, err.Error())
			continue
		}
		rs := &runningStream{spec: spec, drain: make(chan struct{}), done: make(chan struct{})}
		r.streams[topic] = rs
		sb := &streamBackup{topic: topic, owner: b.Namespace + "/" + b.Name, settings: settings, bucket: r.bucket,
			client: r.client, consumer: r.consumer, metrics: r.metrics, progress: r.progress, budget: r.budget, recheck: r.opts.Recheck}
		r.progress.setStream(topic, StreamStreaming, "")
		r.wg.Go(func() {
			defer close(rs.done)
			sb.run(ctx, rs.drain)
		})
		logger.Info("Stream started", "topic", topic, "compression", settings.codec, "level", settings.level, "rolloverBytes", settings.rollBytes, "rolloverAfter", settings.rollAge)
	}
	for _, s := range b.Spec.Streams {
		if _, ok := wanted[s.Topic]; !ok {
			r.progress.disableStream(s.Topic)
		}
	}
}

func (r *backupRun) stopAll() {
	for _, rs := range r.streams {
		close(rs.drain)
	}
	for topic, rs := range r.streams {
		<-rs.done
		delete(r.streams, topic)
	}
}

func segmentSettingsOf(s v1alpha.BackupStream) (segmentSettings, error) {
	st := segmentSettings{codec: segment.CodecZstd, rollBytes: DefaultRolloverSize, rollAge: DefaultRolloverTimeout}
	if c := s.Compression; c != nil && c.Algorithm != "" {
		codec, err := segment.ParseCodec(string(c.Algorithm))
		if err != nil {
			return st, fmt.Errorf("compression.algorithm: %w", err)
		}
		st.codec = codec
	}
	if c := s.Compression; c != nil {
		level, err := segment.ParseLevel(st.codec, string(c.Level))
		if err != nil {
			return st, fmt.Errorf("compression.level: %w", err)
		}
		st.level = level
	}
	if t := s.SegmentRolloverTriggers; t != nil {
		if t.Size != nil {
			if t.Size.Cmp(resource.MustParse("0")) <= 0 {
				return st, errors.New(backupspec.SizeProblem)
			}
			st.rollBytes = t.Size.Value()
		}
		if t.TimeoutSeconds != nil {
			st.rollAge = time.Duration(*t.TimeoutSeconds) * time.Second
		}
	}
	return st, nil
}

// startFieldManager owns only the WorkerConnected condition, so that a
// worker that fails before it reports progress does not remove the stream
// progress an earlier worker wrote (armory-worker's fields).
const startFieldManager = "armory-worker-start"

// reportConnected sets the Backup's WorkerConnected condition: False with
// err, or True. A failure to write it is logged: the worker's own error
// matters more.
func reportConnected(ctx context.Context, o BackupOptions, b *v1alpha.Backup, err error) {
	cond := applymetav1.Condition().WithType(v1alpha.BackupWorkerConnected).WithObservedGeneration(b.Generation).
		WithLastTransitionTime(metav1.NewTime(time.Now().Truncate(time.Second)))
	if err != nil {
		cond.WithStatus(metav1.ConditionFalse).WithReason("CannotConnect").WithMessage(v1alpha.TruncateMessage(err.Error()))
	} else {
		cond.WithStatus(metav1.ConditionTrue).WithReason("Connected").WithMessage("the worker reached Kafka and the Storage")
	}
	if old := meta.FindStatusCondition(b.Status.Conditions, v1alpha.BackupWorkerConnected); old != nil &&
		string(old.Status) == string(*cond.Status) && old.Message == *cond.Message {
		cond.WithLastTransitionTime(old.LastTransitionTime) // unchanged: keep when it became so
	}
	apply := applyv1alpha.Backup(b.Name, b.Namespace).WithStatus(applyv1alpha.BackupStatus().WithConditions(cond))
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if _, werr := o.Armory.KannikaV1alpha().Backups(b.Namespace).ApplyStatus(wctx, apply,
		metav1.ApplyOptions{FieldManager: startFieldManager, Force: true}); werr != nil {
		klog.FromContext(ctx).Error(werr, "Could not report in the Backup's status whether the worker started")
	}
}
