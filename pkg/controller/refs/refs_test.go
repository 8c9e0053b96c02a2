package refs

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"

	"github.com/kannika/armory/apis/kannika/v1alpha"
	listers "github.com/kannika/armory/generated/listers/kannika/v1alpha"
)

func indexer(objs ...runtime.Object) cache.Indexer {
	i := cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc})
	for _, o := range objs {
		if err := i.Add(o); err != nil {
			panic(err)
		}
	}
	return i
}

func objMeta(name string) metav1.ObjectMeta {
	return metav1.ObjectMeta{Name: name, Namespace: "team-a"}
}

func secretRef(name, key string) v1alpha.SecretValueSource {
	return v1alpha.SecretValueSource{SecretKeyRef: v1alpha.SecretKeySelector{Name: name, Key: key}}
}

func credsFrom(name string) *v1alpha.CredentialsFrom {
	return &v1alpha.CredentialsFrom{CredentialsRef: v1alpha.LocalObjectReference{Name: name}}
}

func world() Listers {
	eventHub := &v1alpha.EventHub{ObjectMeta: objMeta("kafka"), Spec: v1alpha.EventHubSpec{Kafka: v1alpha.KafkaSettings{
		Properties: map[string]string{"bootstrap.servers": "kafka:9092"}}}}
	badEventHub := &v1alpha.EventHub{ObjectMeta: objMeta("bad-kafka"), Spec: v1alpha.EventHubSpec{Kafka: v1alpha.KafkaSettings{
		Properties: map[string]string{"bootstrap.servers": "kafka:9092", "sasl.password": "hunter2"}}}}
	bucket := &v1alpha.Storage{ObjectMeta: objMeta("bucket"), Spec: v1alpha.StorageSpec{GCSBucket: &v1alpha.GCSBucket{Bucket: "b"}}}
	volume := &v1alpha.Storage{ObjectMeta: objMeta("volume"), Spec: v1alpha.StorageSpec{Volume: &v1alpha.VolumeStorage{Capacity: resource.MustParse("1Gi")}}}
	sasl := &v1alpha.Credentials{ObjectMeta: objMeta("sasl"), Spec: v1alpha.CredentialsSpec{SASL: &v1alpha.SASLCredentials{
		Mechanism: v1alpha.SASLPlain, UsernameFrom: secretRef("kafka-user", "username"), PasswordFrom: secretRef("kafka-user", "password")}}}
	saslMissingSecret := &v1alpha.Credentials{ObjectMeta: objMeta("sasl-no-secret"), Spec: v1alpha.CredentialsSpec{SASL: &v1alpha.SASLCredentials{
		Mechanism: v1alpha.SASLPlain, UsernameFrom: secretRef("nope", "username"), PasswordFrom: secretRef("nope", "password")}}}
	gcp := &v1alpha.Credentials{ObjectMeta: objMeta("gcp"), Spec: v1alpha.CredentialsSpec{GCP: &v1alpha.GCPCredentials{
		ServiceAccountJSONFrom: secretRef("gcs-key", "key.json")}}}
	// Only key names: as the controller's stripped Secret cache holds them.
	kafkaUser := &corev1.Secret{ObjectMeta: objMeta("kafka-user"), Data: map[string][]byte{"username": nil}}
	gcsKey := &corev1.Secret{ObjectMeta: objMeta("gcs-key"), Data: map[string][]byte{"key.json": nil}}
	return Listers{
		EventHubs:   listers.NewEventHubLister(indexer(eventHub, badEventHub)),
		Storages:    listers.NewStorageLister(indexer(bucket, volume)),
		Credentials: listers.NewCredentialsLister(indexer(sasl, saslMissingSecret, gcp)),
		Secrets:     corelisters.NewSecretLister(indexer(kafkaUser, gcsKey)),
	}
}

func TestResolveBackup(t *testing.T) {
	tests := []struct {
		name   string
		spec   v1alpha.BackupSpec
		want   []string // problem messages, in order
		reason string   // of the first
	}{
		{"all present", v1alpha.BackupSpec{Source: "kafka", Sink: "bucket", SinkCredentialsFrom: credsFrom("gcp")}, nil, ""},
		{"missing EventHub", v1alpha.BackupSpec{Source: "my-kafka-cluster", Sink: "bucket"},
			[]string{`spec.source: EventHub "my-kafka-cluster" not found in namespace "team-a"; create it or correct the name`}, ReasonEventHubNotFound},
		{"Failed EventHub", v1alpha.BackupSpec{Source: "bad-kafka", Sink: "bucket"},
			[]string{`spec.source: EventHub "bad-kafka" cannot be used: spec.kafka.properties[sasl.password]: Forbidden: authentication is set in a Credentials resource`}, ReasonEventHubFailed},
		{"missing Storage", v1alpha.BackupSpec{Source: "kafka", Sink: "my-storage"},
			[]string{`spec.sink: Storage "my-storage" not found in namespace "team-a"; create it or correct the name`}, ReasonStorageNotFound},
		{"missing Credentials", v1alpha.BackupSpec{Source: "kafka", Sink: "bucket", SourceCredentialsFrom: credsFrom("kafka-sasl")},
			[]string{`spec.sourceCredentialsFrom.credentialsRef.name: Credentials "kafka-sasl" not found in namespace "team-a"; create them or correct the name`}, ReasonCredentialsNotFound},
		{"missing Secret key", v1alpha.BackupSpec{Source: "kafka", Sink: "bucket", SourceCredentialsFrom: credsFrom("sasl")},
			[]string{`spec.sourceCredentialsFrom.credentialsRef.name: Credentials "sasl": spec.sasl.passwordFrom.secretKeyRef: Secret "kafka-user" has no key "password"; add the key or correct the reference`}, ReasonSecretKeyNotFound},
		{"missing Secret", v1alpha.BackupSpec{Source: "kafka", Sink: "bucket", SourceCredentialsFrom: credsFrom("sasl-no-secret")},
			[]string{
				`spec.sourceCredentialsFrom.credentialsRef.name: Credentials "sasl-no-secret": spec.sasl.usernameFrom.secretKeyRef: Secret "nope" not found in namespace "team-a"; create it or correct the reference`,
				`spec.sourceCredentialsFrom.credentialsRef.name: Credentials "sasl-no-secret": spec.sasl.passwordFrom.secretKeyRef: Secret "nope" not found in namespace "team-a"; create it or correct the reference`,
			}, ReasonSecretNotFound},
		{"gcp Credentials for Kafka", v1alpha.BackupSpec{Source: "kafka", Sink: "bucket", SourceCredentialsFrom: credsFrom("gcp")},
			[]string{`spec.sourceCredentialsFrom.credentialsRef.name: Credentials "gcp" are gcp credentials, which cannot authenticate to Kafka; reference sasl or mTls Credentials`}, ReasonCredentialsMismatch},
		{"sasl Credentials for a bucket", v1alpha.BackupSpec{Source: "kafka", Sink: "bucket", SinkCredentialsFrom: credsFrom("sasl")},
			[]string{
				`spec.sinkCredentialsFrom.credentialsRef.name: Credentials "sasl" are sasl credentials, which cannot authenticate to a Storage; reference gcp Credentials`,
				`spec.sinkCredentialsFrom.credentialsRef.name: Credentials "sasl": spec.sasl.passwordFrom.secretKeyRef: Secret "kafka-user" has no key "password"; add the key or correct the reference`,
			}, ReasonCredentialsMismatch},
		{"Credentials for a volume", v1alpha.BackupSpec{Source: "kafka", Sink: "volume", SinkCredentialsFrom: credsFrom("gcp")},
			[]string{`spec.sinkCredentialsFrom: Storage "volume" is a volume, which takes no credentials; remove sinkCredentialsFrom`}, ReasonCredentialsMismatch},
	}
	l := world()
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, err := l.Backup(&v1alpha.Backup{ObjectMeta: objMeta("b"), Spec: tc.spec})
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, p := range r.Problems {
				got = append(got, p.Message)
				if strings.Contains(p.Message, "hunter2") {
					t.Errorf("a problem message carries a secret value: %s", p.Message)
				}
			}
			if len(got) != len(tc.want) {
				t.Fatalf("problems = %q\nwant       %q", got, tc.want)
			}
			for i := range got {
				if !strings.HasPrefix(got[i], tc.want[i]) {
					t.Errorf("problem %d = %q\nwant         %q", i, got[i], tc.want[i])
				}
			}
			if len(tc.want) > 0 && r.Problems[0].Reason != tc.reason {
				t.Errorf("reason = %s, want %s", r.Problems[0].Reason, tc.reason)
			}
		})
	}
}

func TestStorageStatus(t *testing.T) {
	bucket := &v1alpha.Storage{ObjectMeta: objMeta("my-storage"), Spec: v1alpha.StorageSpec{GCSBucket: &v1alpha.GCSBucket{Bucket: "my-company-kafka-backups", Prefix: "prod/"}}}
	if st := StorageStatus(bucket, nil, ""); st.Phase != v1alpha.PhaseReady || st.Location != "gs://my-company-kafka-backups/prod" || st.Message != "🌈 Ready" {
		t.Errorf("bucket status = %+v", st)
	}
	volume := &v1alpha.Storage{ObjectMeta: objMeta("my-volume"), Spec: v1alpha.StorageSpec{Volume: &v1alpha.VolumeStorage{Capacity: resource.MustParse("10Gi")}}}
	pvc := NewPVC(volume)
	if st := StorageStatus(volume, pvc, ""); st.Phase != v1alpha.PhaseReady || st.Location != "pvc/my-volume-storage" {
		t.Errorf("volume status = %+v", st)
	}
	foreign := pvc.DeepCopy()
	foreign.Labels = nil
	if st := StorageStatus(volume, foreign, ""); st.Phase != v1alpha.PhaseFailed ||
		!strings.Contains(st.Message, `PersistentVolumeClaim "my-volume-storage" already exists and does not belong to this Storage`) {
		t.Errorf("clashing claim: status = %+v", st)
	}
	lost := pvc.DeepCopy()
	lost.Status.Phase = corev1.ClaimLost
	if st := StorageStatus(volume, lost, ""); st.Phase != v1alpha.PhaseFailed || !strings.Contains(st.Message, "lost its volume") {
		t.Errorf("lost claim: status = %+v", st)
	}
	if len(pvc.OwnerReferences) != 0 {
		t.Error("the claim has an owner reference: deleting the Storage would delete backed-up data")
	}
}

func TestEventHubStatus(t *testing.T) {
	eh := &v1alpha.EventHub{ObjectMeta: objMeta("my-kafka-cluster"), Spec: v1alpha.EventHubSpec{Kafka: v1alpha.KafkaSettings{
		Properties: map[string]string{"bootstrap.servers": "kafka-0.kafka:9092,kafka-1.kafka:9092"}}}}
	st := EventHubStatus(eh)
	if st.Phase != v1alpha.PhaseReady || st.Type != "Kafka" || st.Location != "kafka-0.kafka:9092,kafka-1.kafka:9092" || st.Message != "🌈 Ready" {
		t.Errorf("status = %+v", st)
	}
	eh.Spec.Kafka.Properties["fetch.min.bytes"] = "lots"
	eh.Spec.Kafka.Properties["auto.offset.reset"] = "earliest"
	st = EventHubStatus(eh)
	want := `💥 Failed: spec.kafka.properties[auto.offset.reset]: Unsupported value: "auto.offset.reset": supported values:`
	if st.Phase != v1alpha.PhaseFailed || !strings.HasPrefix(st.Message, want) || !strings.Contains(st.Message, "(and 1 more") {
		t.Errorf("status message = %q\nwant prefix      %q", st.Message, want)
	}
	if c := st.Conditions[0]; !strings.Contains(c.Message, "spec.kafka.properties[fetch.min.bytes]: Invalid value: \"lots\": must be a whole number") {
		t.Errorf("condition message = %q", c.Message)
	}
}
