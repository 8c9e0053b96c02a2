package kafka

import (
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/kannika/armory/pkg/kafka/properties"
)

// FuzzPropertiesTheValidationAccepts: the controller marks an EventHub
// Ready when properties.Validate accepts it, so whatever it accepts, the
// worker must be able to use: NewSettings (backup and restore) succeeds and
// sarama's own checks pass. What it refuses names the property.
func FuzzPropertiesTheValidationAccepts(f *testing.F) {
	f.Add("kafka-0.kafka:9092", "fetch.max.wait.ms", "500", "security.protocol", "sasl_ssl", "linger.ms", "5")
	f.Add("[::1]:9092,127.0.0.1:9093", "max.partition.fetch.bytes", "1024", "batch.size", "1", "max.request.size", "1024")
	f.Add("k:9092", "request.timeout.ms", "1", "socket.connection.setup.timeout.ms", "1", "retry.backoff.ms", "0")
	f.Add("k:9092", "metadata.max.age.ms", "1000", "fetch.min.bytes", "1073741824", "replication.factor", "32767")
	f.Add("k:9092", "compression.type", "zstd", "compression.codec", "lz4", "acks", "-1")
	f.Add("k:9092", "client.id", " ", "sasl.password", "x", "unknown", "1")
	f.Add("host with space:9092", "linger.ms", "60000", "fetch.max.wait.ms", "60000", "batch.size", "1073741824")
	f.Fuzz(func(t *testing.T, servers, k1, v1, k2, v2, k3, v3 string) {
		props := map[string]string{"bootstrap.servers": servers, k1: v1, k2: v2, k3: v3}
		path := field.NewPath("spec", "kafka", "properties")
		errs := properties.Validate(path, props)
		for _, e := range errs {
			if !strings.HasPrefix(e.Field, "spec.kafka.properties[") {
				t.Errorf("an error that does not name the property: %v", e)
			}
		}
		if len(errs) > 0 {
			return
		}
		s, err := NewSettings(props, Auth{})
		if err != nil {
			t.Fatalf("validation accepted %v, the worker refuses it: %v", props, err)
		}
		if err := s.Config.Validate(); err != nil {
			t.Fatalf("validation accepted %v, sarama refuses the backup settings: %v", props, err)
		}
		ts, err := NewTransactionalSettings(props, Auth{}, "armory-restore-x")
		if err != nil {
			t.Fatalf("validation accepted %v, the restore worker refuses it: %v", props, err)
		}
		if err := ts.Config.Validate(); err != nil {
			t.Fatalf("validation accepted %v, sarama refuses the restore settings: %v", props, err)
		}
	})
}
