package properties

import (
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/util/validation/field"
)

func TestValidate(t *testing.T) {
	path := field.NewPath("spec", "kafka", "properties")
	tests := []struct {
		props map[string]string
		want  []string
	}{
		{map[string]string{"bootstrap.servers": "kafka-0.kafka:9092,kafka-1.kafka:9092"}, nil},
		{map[string]string{"bootstrap.servers": "127.0.0.1:9092", "client.id": "armory", "acks": "all", "fetch.max.wait.ms": "100"}, nil},
		{map[string]string{"bootstrap.servers": "k:9092", "security.protocol": "sasl_ssl"}, nil}, // Kafka takes any case
		{map[string]string{"bootstrap.servers": "k:9092", "security.protocol": "tls"}, []string{`spec.kafka.properties[security.protocol]: Invalid value: "tls": must be one of PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL`}},
		{map[string]string{}, []string{"spec.kafka.properties[bootstrap.servers]: Required value"}},
		{map[string]string{"bootstrap.servers": "kafka"}, []string{`spec.kafka.properties[bootstrap.servers]: Invalid value: "kafka": "kafka" is not host:port`}},
		{map[string]string{"bootstrap.servers": "kafka:99999"}, []string{`"kafka:99999" has no valid port`}},
		{map[string]string{"bootstrap.servers": "kafka 0:9092"}, []string{`"kafka 0:9092": "kafka 0" is not a host name or IP address`}},
		{map[string]string{"bootstrap.servers": "kafka/0:9092"}, []string{`"kafka/0" is not a host name or IP address`}},
		{map[string]string{"bootstrap.servers": "kafka_0.kafka:9092, [::1]:9092, 10.0.0.1:9092, kafka-0.kafka.svc.cluster.local.:9092"}, nil},
		{map[string]string{"bootstrap.servers": "k:9092", "fetch.min.bytes": "-1"}, []string{"spec.kafka.properties[fetch.min.bytes]: Invalid value: \"-1\": must be between 1 and"}},
		{map[string]string{"bootstrap.servers": "k:9092", "acks": "most"}, []string{`spec.kafka.properties[acks]: Invalid value: "most": must be one of all, -1`}},
		{map[string]string{"bootstrap.servers": "k:9092", "sasl.jaas.config": "x"}, []string{"spec.kafka.properties[sasl.jaas.config]: Forbidden: authentication is set in a Credentials resource"}},
		{map[string]string{"bootstrap.servers": "k:9092", "isolation.level": "read_uncommitted"}, []string{`spec.kafka.properties[isolation.level]: Unsupported value: "isolation.level"`}},
	}
	for _, tc := range tests {
		errs := Validate(path, tc.props)
		if len(errs) != len(tc.want) {
			t.Errorf("%v: errors = %v, want %d", tc.props, errs, len(tc.want))
			continue
		}
		for i, want := range tc.want {
			if !strings.Contains(errs[i].Error(), want) {
				t.Errorf("%v: error %q does not say %q", tc.props, errs[i].Error(), want)
			}
		}
	}
}

// TestPropertiesAreDocumented keeps docs/eventhub-properties.md in step with
// the list users are held to.
func TestPropertiesAreDocumented(t *testing.T) {
	_, file, _, _ := runtime.Caller(0)
	doc, err := os.ReadFile(filepath.Join(filepath.Dir(file), "..", "..", "..", "docs", "eventhub-properties.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range Supported {
		if !strings.Contains(string(doc), "| `"+p.Name+"` | "+p.Doc+" |") {
			t.Errorf("docs/eventhub-properties.md does not document %s as: %s", p.Name, p.Doc)
		}
	}
	if got, want := strings.Count(string(doc), "\n| `"), len(Supported); got != want {
		t.Errorf("docs/eventhub-properties.md lists %d properties, the code supports %d", got, want)
	}
}
