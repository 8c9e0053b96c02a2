package v1alpha_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/dynamic"
	"sigs.k8s.io/yaml"

	"github.com/kannika/armory/apis/kannika/v1alpha"
)

// create sends a YAML object to the API server as kubectl would, and returns
// the server's answer.
func create(t *testing.T, ns, manifest string) (*unstructured.Unstructured, error) {
	t.Helper()
	obj := &unstructured.Unstructured{}
	if err := yaml.Unmarshal([]byte(manifest), &obj.Object); err != nil {
		t.Fatalf("test manifest is not YAML: %v", err)
	}
	client, err := dynamic.NewForConfig(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	gvr := v1alpha.SchemeGroupVersion.WithResource(strings.ToLower(obj.GetKind()) + "s")
	if obj.GetKind() == "Credentials" {
		gvr = v1alpha.SchemeGroupVersion.WithResource("credentials")
	}
	return client.Resource(gvr).Namespace(ns).Create(ctx, obj, metav1.CreateOptions{})
}

// TestInvalidObjectsAreRejected applies objects that can never work and checks
// that the API server refuses each with a message naming the offending field.
func TestInvalidObjectsAreRejected(t *testing.T) {
	t.Parallel()
	ns := env.Namespace(t)
	longTopic := strings.Repeat("a", 250)

	tests := []struct {
		name     string
		manifest string
		want     []string // substrings of the server's message
	}{
		{"backup without source", backup("", `
  sink: my-storage
  streams: [{topic: a}]`), []string{"spec.source: Required value"}},
		{"backup without sink", backup("", `
  source: my-kafka
  streams: [{topic: a}]`), []string{"spec.sink: Required value"}},
		{"stream without topic", backup("", `
  source: my-kafka
  sink: my-storage
  streams: [{enabled: true}]`), []string{"spec.streams[0].topic: Required value"}},
		{"topic name with a space", backup("", `
  source: my-kafka
  sink: my-storage
  streams: [{topic: "magic events"}]`), []string{`spec.streams[0].topic: Invalid value: "magic events"`, "should match"}},
		{"topic name of 250 characters", backup("", `
  source: my-kafka
  sink: my-storage
  streams: [{topic: `+longTopic+`}]`), []string{"spec.streams[0].topic: Too long", "249"}},
		{"topic named ..", backup("", `
  source: my-kafka
  sink: my-storage
  streams: [{topic: ".."}]`), []string{"spec.streams[0].topic", "cannot be named '.' or '..'"}},
		{"same topic twice", backup("", `
  source: my-kafka
  sink: my-storage
  streams: [{topic: a}, {topic: b}, {topic: a}]`), []string{"spec.streams[2]: Duplicate value"}},
		{"compression rar", backup("", `
  source: my-kafka
  sink: my-storage
  compression: {algorithm: rar}
  streams: [{topic: a}]`), []string{`spec.compression.algorithm: Unsupported value: "rar"`, `"zstd"`}},
		{"stream compression rar", backup("", `
  source: my-kafka
  sink: my-storage
  streams: [{topic: a, compression: {algorithm: rar}}]`), []string{`spec.streams[0].compression.algorithm: Unsupported value: "rar"`}},
		{"compression level max", backup("", `
  source: my-kafka
  sink: my-storage
  compression: {algorithm: zstd, level: max}
  streams: [{topic: a}]`), []string{`spec.compression.level: Unsupported value: "max"`, `"fastest", "default", "better"`}},
		{"snappy at level better", backup("", `
  source: my-kafka
  sink: my-storage
  streams: [{topic: a, compression: {algorithm: snappy, level: better}}]`), []string{"spec.streams[0].compression.level", "none and snappy have no levels: leave level out, or use zstd, gzip or lz4"}},
		{"negative timeoutSeconds", backup("", `
  source: my-kafka
  sink: my-storage
  segmentRolloverTriggers: {timeoutSeconds: -5}
  streams: [{topic: a}]`), []string{"spec.segmentRolloverTriggers.timeoutSeconds: Invalid value: -5", "greater than or equal to 1"}},
		{"backup name of 64 characters", strings.Replace(backup("", `
  source: my-kafka
  sink: my-storage
  streams: [{topic: a}]`), "NAME", strings.Repeat("b", 64), 1), []string{"metadata.name must be at most 63 characters"}},
		{"storage with gcsBucket and volume", `
apiVersion: kannika.io/v1alpha
kind: Storage
metadata: {name: both}
spec:
  gcsBucket: {bucket: my-bucket}
  volume: {capacity: 1Gi}`, []string{"spec: Invalid value", "exactly one of gcsBucket or volume must be set"}},
		{"storage with neither", `
apiVersion: kannika.io/v1alpha
kind: Storage
metadata: {name: neither}
spec: {}`, []string{"spec: Invalid value", "exactly one of gcsBucket or volume must be set"}},
		{"gcsBucket without bucket", `
apiVersion: kannika.io/v1alpha
kind: Storage
metadata: {name: nobucket}
spec:
  gcsBucket: {prefix: prod}`, []string{"spec.gcsBucket.bucket: Required value"}},
		{"bucket starting with goog", `
apiVersion: kannika.io/v1alpha
kind: Storage
metadata: {name: NAME}
spec:
  gcsBucket: {bucket: googly-bucket}`, []string{"spec.gcsBucket", "GCS refuses bucket names that start with \"goog\""}},
		{"bucket containing google", `
apiVersion: kannika.io/v1alpha
kind: Storage
metadata: {name: NAME}
spec:
  gcsBucket: {bucket: my-google-backups}`, []string{"spec.gcsBucket", "contain \"google\""}},
		{"bucket in IP form", `
apiVersion: kannika.io/v1alpha
kind: Storage
metadata: {name: NAME}
spec:
  gcsBucket: {bucket: 192.168.5.4}`, []string{"spec.gcsBucket", "IP-address form"}},
		{"bucket with two dots in a row", `
apiVersion: kannika.io/v1alpha
kind: Storage
metadata: {name: NAME}
spec:
  gcsBucket: {bucket: a..b}`, []string{"spec.gcsBucket", "no \"..\""}},
		{"bucket of 64 characters without dots", `
apiVersion: kannika.io/v1alpha
kind: Storage
metadata: {name: NAME}
spec:
  gcsBucket: {bucket: bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb}`, []string{"spec.gcsBucket", "without dots has at most 63 characters"}},
		{"prefix escaping upwards", `
apiVersion: kannika.io/v1alpha
kind: Storage
metadata: {name: NAME}
spec:
  gcsBucket: {bucket: my-bucket, prefix: "../escape"}`, []string{"spec.gcsBucket", "must not have a \".\" or \"..\" part"}},
		{"prefix with a .. part inside", `
apiVersion: kannika.io/v1alpha
kind: Storage
metadata: {name: NAME}
spec:
  gcsBucket: {bucket: my-bucket, prefix: "team/../other"}`, []string{"spec.gcsBucket", "must not have a \".\" or \"..\" part"}},
		{"endpoint with no host", `
apiVersion: kannika.io/v1alpha
kind: Storage
metadata: {name: NAME}
spec:
  gcsBucket: {bucket: my-bucket, endpoint: "http://"}`, []string{"spec.gcsBucket", "spec.gcsBucket.endpoint"}},
		{"restore source ..", `
apiVersion: kannika.io/v1alpha
kind: Restore
metadata: {name: NAME}
spec:
  source: ".."
  sink: my-kafka`, []string{"spec.source"}},
		{"volume of capacity 0", `
apiVersion: kannika.io/v1alpha
kind: Storage
metadata: {name: s}
spec:
  volume: {capacity: "0"}`, []string{"spec.volume.capacity: Invalid value", "capacity must be greater than 0, e.g. 10Gi"}},
		{"volume of negative capacity", `
apiVersion: kannika.io/v1alpha
kind: Storage
metadata: {name: s}
spec:
  volume: {capacity: -1Gi}`, []string{"spec.volume.capacity: Invalid value", "capacity must be greater than 0, e.g. 10Gi"}},
		{"volume without capacity", `
apiVersion: kannika.io/v1alpha
kind: Storage
metadata: {name: nocapacity}
spec:
  volume: {storageClass: standard}`, []string{"spec.volume.capacity: Required value"}},
		{"credentials with two kinds", `
apiVersion: kannika.io/v1alpha
kind: Credentials
metadata: {name: two}
spec:
  gcp:
    serviceAccountJsonFrom: {secretKeyRef: {name: s, key: key.json}}
  mTls:
    certificatePemFrom: {secretKeyRef: {name: s, key: tls.crt}}
    privateKeyPemFrom: {secretKeyRef: {name: s, key: tls.key}}`, []string{"spec: Invalid value", "exactly one of sasl, mTls or gcp must be set"}},
		{"credentials with no kind", `
apiVersion: kannika.io/v1alpha
kind: Credentials
metadata: {name: none}
spec: {}`, []string{"spec: Invalid value", "exactly one of sasl, mTls or gcp must be set"}},
		{"sasl mechanism GSSAPI", `
apiVersion: kannika.io/v1alpha
kind: Credentials
metadata: {name: gssapi}
spec:
  sasl:
    mechanism: GSSAPI
    usernameFrom: {secretKeyRef: {name: s, key: username}}
    passwordFrom: {secretKeyRef: {name: s, key: password}}`, []string{`spec.sasl.mechanism: Unsupported value: "GSSAPI"`, `"SCRAM-SHA-512"`}},
		{"secretKeyRef without key", `
apiVersion: kannika.io/v1alpha
kind: Credentials
metadata: {name: nokey}
spec:
  gcp:
    serviceAccountJsonFrom: {secretKeyRef: {name: s}}`, []string{"spec.gcp.serviceAccountJsonFrom.secretKeyRef.key: Required value"}},
		{"eventhub without bootstrap.servers", `
apiVersion: kannika.io/v1alpha
kind: EventHub
metadata: {name: nobootstrap}
spec:
  kafka:
    properties: {client.id: armory}`, []string{"spec.kafka.properties", "bootstrap.servers is required"}},
		{"restore topic without target", restore(`
    topics:
      - source: magic.events`), []string{"spec.config.topics[0].target: Required value"}},
		{"restore partition with from >= until", restore(`
    topics:
      - source: pixie.dust
        target: pixie.dust
        partitions:
          - {number: 0, restoreFromOffset: 2000, restoreUntilOffset: 2000}`),
			[]string{"spec.config.topics[0].partitions[0]", "restoreFromOffset must be less than restoreUntilOffset"}},
		{"restore partition number -1", restore(`
    topics:
      - source: pixie.dust
        target: pixie.dust
        partitions: [{number: -1}]`), []string{"spec.config.topics[0].partitions[0].number: Invalid value: -1"}},
		{"restore time window reversed", restore(`
    topics: [{source: a, target: b}]
    filters:
      time:
        absolute:
          fromDateTime: "2026-11-21T00:00:00Z"
          toDateTime: "2026-11-20T00:00:00Z"`), []string{"spec.config.filters.time.absolute", "fromDateTime must be before toDateTime"}},
		{"restore two sources into one target", restore(`
    topics:
      - {source: a, target: merged}
      - {source: b, target: merged}`), []string{"spec.config.topics", "each target topic may appear only once"}},
		{"restore into an internal topic", restore(`
    topics: [{source: a, target: __consumer_offsets}]`), []string{"spec.config.topics[0].target", "Kafka's internal topics"}},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			manifest := strings.ReplaceAll(tc.manifest, "NAME", fmt.Sprintf("invalid-%d", i))
			_, err := create(t, ns, manifest)
			if err == nil {
				t.Fatalf("the API server accepted an object that can never work:\n%s", manifest)
			}
			if !apierrors.IsInvalid(err) {
				t.Fatalf("want an Invalid error, got %v", err)
			}
			for _, want := range tc.want {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("message does not say %q:\n%v", want, err)
				}
			}
		})
	}
	if len(tests) < 15 {
		t.Fatalf("only %d invalid objects", len(tests))
	}
}

func backup(_ string, spec string) string {
	return `
apiVersion: kannika.io/v1alpha
kind: Backup
metadata: {name: NAME}
spec:` + spec
}

func restore(config string) string {
	return `
apiVersion: kannika.io/v1alpha
kind: Restore
metadata: {name: NAME}
spec:
  source: my-storage
  sink: my-kafka
  config:` + config
}

// TestDefaults checks the defaults the API server fills in, as a user reads
// them back.
func TestDefaults(t *testing.T) {
	t.Parallel()
	ns := env.Namespace(t)
	ctx := context.Background()
	if _, err := create(t, ns, `
apiVersion: kannika.io/v1alpha
kind: Backup
metadata: {name: defaults}
spec:
  source: my-kafka
  sink: my-storage
  streams: [{topic: a}, {topic: b, enabled: false}]`); err != nil {
		t.Fatal(err)
	}
	b, err := env.Armory.KannikaV1alpha().Backups(ns).Get(ctx, "defaults", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if b.Spec.Enabled == nil || !*b.Spec.Enabled {
		t.Errorf("spec.enabled = %v, want true", b.Spec.Enabled)
	}
	if b.Spec.Streams[0].Enabled == nil || !*b.Spec.Streams[0].Enabled {
		t.Errorf("spec.streams[0].enabled = %v, want true", b.Spec.Streams[0].Enabled)
	}
	if b.Spec.Streams[1].Enabled == nil || *b.Spec.Streams[1].Enabled {
		t.Errorf("spec.streams[1].enabled = %v, want false as written", b.Spec.Streams[1].Enabled)
	}
	if b.Spec.Compression == nil || b.Spec.Compression.Algorithm != v1alpha.CompressionZstd {
		t.Errorf("spec.compression = %+v, want algorithm zstd", b.Spec.Compression)
	}
	// A level alone takes the default algorithm; none and snappy take the
	// default level when it is written out.
	if _, err := create(t, ns, `
apiVersion: kannika.io/v1alpha
kind: Backup
metadata: {name: levels}
spec:
  source: my-kafka
  sink: my-storage
  compression: {level: fastest}
  streams: [{topic: a, compression: {algorithm: none, level: default}}, {topic: b, compression: {algorithm: gzip, level: better}}]`); err != nil {
		t.Fatal(err)
	}
	if b, err = env.Armory.KannikaV1alpha().Backups(ns).Get(ctx, "levels", metav1.GetOptions{}); err != nil {
		t.Fatal(err)
	}
	if c := b.Spec.Compression; c == nil || c.Algorithm != v1alpha.CompressionZstd || c.Level != v1alpha.CompressionFastest {
		t.Errorf("spec.compression = %+v, want zstd at level fastest", c)
	}

	if _, err := create(t, ns, strings.Replace(restore(`
    topics: [{source: a, target: b}]`), "NAME", "defaults", 1)); err != nil {
		t.Fatal(err)
	}
	r, err := env.Armory.KannikaV1alpha().Restores(ns).Get(ctx, "defaults", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if r.Spec.Enabled == nil || *r.Spec.Enabled {
		t.Errorf("restore spec.enabled = %v, want false", r.Spec.Enabled)
	}
}

// TestStorageClassIsImmutable checks that a volume's storage class cannot be
// changed, added or removed once the Storage exists.
func TestStorageClassIsImmutable(t *testing.T) {
	t.Parallel()
	ns := env.Namespace(t)
	ctx := context.Background()
	storages := env.Armory.KannikaV1alpha().Storages(ns)
	for _, name := range []string{"with-class", "without-class"} {
		manifest := "apiVersion: kannika.io/v1alpha\nkind: Storage\nmetadata: {name: " + name + "}\nspec:\n  volume: {capacity: 1Gi}\n"
		if name == "with-class" {
			manifest = strings.Replace(manifest, "1Gi}", "1Gi, storageClass: standard}", 1)
		}
		if _, err := create(t, ns, manifest); err != nil {
			t.Fatal(err)
		}
	}

	tests := []struct {
		name   string
		object string
		class  *string
		want   string
	}{
		{"changed", "with-class", ptr("fast"), `spec.volume.storageClass: Invalid value: "fast": storageClass cannot be changed once set`},
		{"removed", "with-class", nil, "spec.volume: Invalid value: storageClass cannot be added or removed"},
		{"added", "without-class", ptr("fast"), "spec.volume: Invalid value: storageClass cannot be added or removed"},
	}
	for _, tc := range tests {
		s, err := storages.Get(ctx, tc.object, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		s.Spec.Volume.StorageClass = tc.class
		_, err = storages.Update(ctx, s, metav1.UpdateOptions{})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: update error = %v, want it to say %q", tc.name, err, tc.want)
		}
	}

	// The capacity never shrinks, and the kind never changes.
	s, err := storages.Get(ctx, "with-class", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	s.Spec.Volume.Capacity = resource.MustParse("512Mi")
	if _, err := storages.Update(ctx, s, metav1.UpdateOptions{}); err == nil || !strings.Contains(err.Error(), "capacity cannot shrink") {
		t.Errorf("shrinking the volume: %v, want it refused", err)
	}
	s, _ = storages.Get(ctx, "with-class", metav1.GetOptions{})
	s.Spec.Volume, s.Spec.GCSBucket = nil, &v1alpha.GCSBucket{Bucket: "a-bucket"}
	if _, err := storages.Update(ctx, s, metav1.UpdateOptions{}); err == nil || !strings.Contains(err.Error(), "a Storage cannot change between volume and gcsBucket") {
		t.Errorf("turning a volume Storage into a bucket: %v, want it refused", err)
	}

	// Other fields of the volume can still change.
	s, err = storages.Get(ctx, "with-class", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	s.Spec.Volume.Capacity.Add(s.Spec.Volume.Capacity)
	if _, err := storages.Update(ctx, s, metav1.UpdateOptions{}); err != nil {
		t.Errorf("growing the volume with the same storage class: %v", err)
	}
}

func ptr[T any](v T) *T { return &v }
