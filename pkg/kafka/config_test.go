package kafka

import (
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"
)

func TestNewSettingsAppliesProperties(t *testing.T) {
	s, err := NewSettings(map[string]string{
		"bootstrap.servers":         "kafka-0.kafka:9092, kafka-1.kafka:9092",
		"client.id":                 "team-a-backup",
		"fetch.min.bytes":           "1024",
		"fetch.max.wait.ms":         "250",
		"max.partition.fetch.bytes": "4194304",
		"request.timeout.ms":        "20000",
		"metadata.max.age.ms":       "5000",
		"security.protocol":         "ssl", // any case, as Kafka

		"acks":             "-1",
		"compression.type": "zstd",
	}, Auth{})
	if err != nil {
		t.Fatal(err)
	}
	c := s.Config
	switch {
	case len(s.Brokers) != 2 || s.Brokers[1] != "kafka-1.kafka:9092":
		t.Errorf("brokers = %q", s.Brokers)
	case c.ClientID != "team-a-backup", c.Consumer.Fetch.Min != 1024, c.Consumer.MaxWaitTime != 250*time.Millisecond,
		c.Consumer.Fetch.Default != 4194304, c.Net.ReadTimeout != 20*time.Second, c.Metadata.RefreshFrequency != 5*time.Second:
		t.Errorf("consumer settings not applied: %+v", c.Consumer)
	case !c.Net.TLS.Enable:
		t.Error("security.protocol SSL did not turn TLS on")
	case c.Producer.RequiredAcks != sarama.WaitForAll || c.Producer.Compression != sarama.CompressionZSTD:
		t.Errorf("producer settings not applied: acks %v, compression %v", c.Producer.RequiredAcks, c.Producer.Compression)
	case c.Consumer.IsolationLevel != sarama.ReadCommitted:
		t.Error("backups must read committed records only")
	case c.Metadata.AllowAutoTopicCreation:
		t.Error("a backup must never create topics")
	}
}

func TestNewSettingsAuth(t *testing.T) {
	s, err := NewSettings(map[string]string{"bootstrap.servers": "k:9092"},
		Auth{SASL: &SASL{Mechanism: "SCRAM-SHA-256", User: "u", Password: "p"}})
	if err != nil {
		t.Fatal(err)
	}
	if !s.Config.Net.SASL.Enable || s.Config.Net.SASL.Mechanism != sarama.SASLTypeSCRAMSHA256 || s.Config.Net.SASL.SCRAMClientGeneratorFunc == nil || s.Config.Net.TLS.Enable {
		t.Errorf("SASL settings = %+v", s.Config.Net.SASL)
	}
	if _, err := NewSettings(map[string]string{"bootstrap.servers": "k:9092", "sasl.mechanism": "PLAIN"}, Auth{}); err == nil {
		t.Error("an unsupported property was accepted")
	}
}

func TestNewTransactionalSettings(t *testing.T) {
	s, err := NewTransactionalSettings(map[string]string{"bootstrap.servers": "k:9092", "linger.ms": "20"}, Auth{}, "armory-restore-uid")
	if err != nil {
		t.Fatal(err)
	}
	p := s.Config.Producer
	switch {
	case p.Transaction.ID != "armory-restore-uid", !p.Idempotent, p.RequiredAcks != sarama.WaitForAll, s.Config.Net.MaxOpenRequests != 1:
		t.Errorf("not an exactly-once producer: %+v", p)
	case p.Flush.Frequency != 20*time.Millisecond:
		t.Errorf("linger.ms not applied: %v", p.Flush.Frequency)
	}
	if _, err := NewTransactionalSettings(map[string]string{"bootstrap.servers": "k:9092", "acks": "1"}, Auth{}, "id"); err == nil ||
		!strings.Contains(err.Error(), "[acks]") {
		t.Errorf("acks=1 accepted for a restore: %v", err)
	}
}
