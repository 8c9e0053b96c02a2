package kafka

import (
	"crypto/tls"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/IBM/sarama"

	"github.com/kannika/armory/pkg/kafka/properties"
)

// Auth is how to authenticate to Kafka, built from Credentials and their
// Secrets by pkg/credentials. Its fields hold secret values: never log it.
type Auth struct {
	SASL *SASL
	// TLS turns TLS on, with client certificates for mTLS.
	TLS *tls.Config
}

// SASL is a SASL mechanism and login.
type SASL struct {
	Mechanism string // PLAIN, SCRAM-SHA-256, SCRAM-SHA-512
	User      string
	Password  string
}

// Settings are what a worker needs to reach a Kafka cluster.
type Settings struct {
	Brokers []string
	Config  *sarama.Config
}

// Version is the Kafka protocol version Armory speaks: 2.8 adds topic ids to
// metadata, which tell a recreated topic from the one backed up.
var Version = sarama.V2_8_0_0

// NewSettings turns an EventHub's properties and the referenced Credentials
// into a sarama configuration. The properties were validated by
// properties.Validate; a value that fails here is reported all the same.
func NewSettings(props map[string]string, auth Auth) (Settings, error) {
	if errs := properties.Validate(nil, props); len(errs) > 0 {
		return Settings{}, errs.ToAggregate()
	}
	cfg := sarama.NewConfig()
	cfg.Version = Version
	cfg.ClientID = "armory"
	// Backups never see records of aborted transactions.
	cfg.Consumer.IsolationLevel = sarama.ReadCommitted
	cfg.Consumer.Return.Errors = true
	cfg.Consumer.Offsets.AutoCommit.Enable = false
	// How long a partition may leave its channel full before sarama takes
	// it out of its broker's fetches. A partition backup leaves it full
	// while it compresses a block and while it waits for its previous
	// segment's upload. Sarama's default, 100 ms, is shorter than either on
	// a loaded machine, and a partition taken out is fetched again only
	// after sarama's 100 ms batching of resubscriptions and the broker's
	// fetch in flight: up to fetch.max.wait.ms (500 ms) when the broker's
	// other partitions are caught up, as most are in a running backup.
	// Measured (make bench, sarama's log): once one of 3 partitions had
	// caught up, the two others stored 16 MiB every 0.5-1 s instead of every
	// 0.1-0.2 s. A longer time has a cost too: the other partitions of the
	// broker wait for a slow one (its next fetch waits for every partition
	// of the last), up to twice this. 500 ms is about what being taken out
	// costs: a partition that waits less is cheaper to wait for.
	cfg.Consumer.MaxProcessingTime = 500 * time.Millisecond
	cfg.Metadata.RefreshFrequency = 30 * time.Second
	// A backup never creates the topics it reads.
	cfg.Metadata.AllowAutoTopicCreation = false
	cfg.Producer.RequiredAcks = sarama.WaitForAll
	cfg.Producer.Return.Successes = true

	ms := func(name string) time.Duration {
		n, _ := strconv.ParseInt(props[name], 10, 64)
		return time.Duration(n) * time.Millisecond
	}
	num := func(name string) int32 {
		n, _ := strconv.ParseInt(props[name], 10, 32)
		return int32(n)
	}
	for name, v := range props {
		switch name {
		case "client.id":
			cfg.ClientID = v
		case "request.timeout.ms":
			cfg.Net.ReadTimeout, cfg.Net.WriteTimeout = ms(name), ms(name)
		case "socket.connection.setup.timeout.ms":
			cfg.Net.DialTimeout = ms(name)
		case "metadata.max.age.ms":
			cfg.Metadata.RefreshFrequency = ms(name)
		case "retry.backoff.ms":
			cfg.Metadata.Retry.Backoff, cfg.Consumer.Retry.Backoff, cfg.Producer.Retry.Backoff = ms(name), ms(name), ms(name)
		case "fetch.min.bytes":
			cfg.Consumer.Fetch.Min = num(name)
		case "fetch.max.wait.ms":
			cfg.Consumer.MaxWaitTime = ms(name)
		case "max.partition.fetch.bytes":
			cfg.Consumer.Fetch.Default = num(name)
		case "acks":
			cfg.Producer.RequiredAcks = map[string]sarama.RequiredAcks{"all": sarama.WaitForAll, "-1": sarama.WaitForAll, "0": sarama.NoResponse, "1": sarama.WaitForLocal}[v]
		case "compression.type", "compression.codec":
			cfg.Producer.Compression = map[string]sarama.CompressionCodec{"none": sarama.CompressionNone, "gzip": sarama.CompressionGZIP,
				"snappy": sarama.CompressionSnappy, "lz4": sarama.CompressionLZ4, "zstd": sarama.CompressionZSTD}[v]
		case "batch.size":
			cfg.Producer.Flush.Bytes = int(num(name))
		case "linger.ms":
			cfg.Producer.Flush.Frequency = ms(name)
		case "max.request.size":
			cfg.Producer.MaxMessageBytes = int(num(name))
		}
	}

	protocol := strings.ToUpper(props["security.protocol"]) // Kafka takes any case
	if auth.SASL != nil {
		cfg.Net.SASL.Enable = true
		cfg.Net.SASL.Handshake = true
		cfg.Net.SASL.User, cfg.Net.SASL.Password = auth.SASL.User, auth.SASL.Password
		switch auth.SASL.Mechanism {
		case "PLAIN":
			cfg.Net.SASL.Mechanism = sarama.SASLTypePlaintext
		case "SCRAM-SHA-256":
			cfg.Net.SASL.Mechanism = sarama.SASLTypeSCRAMSHA256
			cfg.Net.SASL.SCRAMClientGeneratorFunc = scramClient(sha256Gen)
		case "SCRAM-SHA-512":
			cfg.Net.SASL.Mechanism = sarama.SASLTypeSCRAMSHA512
			cfg.Net.SASL.SCRAMClientGeneratorFunc = scramClient(sha512Gen)
		default:
			return Settings{}, fmt.Errorf("unsupported SASL mechanism %q", auth.SASL.Mechanism)
		}
	}
	if auth.TLS != nil || protocol == "SSL" || protocol == "SASL_SSL" {
		cfg.Net.TLS.Enable = true
		cfg.Net.TLS.Config = auth.TLS
		if cfg.Net.TLS.Config == nil {
			cfg.Net.TLS.Config = &tls.Config{MinVersion: tls.VersionTLS12}
		}
	}
	if err := cfg.Validate(); err != nil {
		return Settings{}, fmt.Errorf("kafka client settings: %w", err)
	}
	var brokers []string
	for _, b := range strings.Split(props["bootstrap.servers"], ",") {
		brokers = append(brokers, strings.TrimSpace(b))
	}
	return Settings{Brokers: brokers, Config: cfg}, nil
}

// ReplicationFactor is the EventHub's replication.factor for created topics,
// or -1: the cluster's default.
func ReplicationFactor(props map[string]string) int16 {
	if n, err := strconv.ParseInt(props["replication.factor"], 10, 16); err == nil {
		return int16(n)
	}
	return -1
}

// NewTransactionalSettings are the settings of a restore's producer: every
// write idempotent, acknowledged by all in-sync replicas, in transactions of
// transactionalID so that a stale producer with the same id is fenced.
func NewTransactionalSettings(props map[string]string, auth Auth, transactionalID string) (Settings, error) {
	s, err := NewSettings(props, auth)
	if err != nil {
		return Settings{}, err
	}
	cfg := s.Config
	cfg.Producer.RequiredAcks = sarama.WaitForAll
	cfg.Producer.Idempotent = true
	cfg.Producer.Transaction.ID = transactionalID
	cfg.Producer.Partitioner = sarama.NewManualPartitioner
	cfg.Producer.Return.Successes = false
	cfg.Producer.Return.Errors = true
	cfg.Producer.Retry.Max = 10
	cfg.Net.MaxOpenRequests = 1 // what idempotence needs to keep order
	if _, ok := props["batch.size"]; !ok {
		cfg.Producer.Flush.Bytes = 512 << 10
	}
	if _, ok := props["linger.ms"]; !ok {
		cfg.Producer.Flush.Frequency = 5 * time.Millisecond
	}
	if _, ok := props["max.request.size"]; !ok {
		cfg.Producer.MaxMessageBytes = 8 << 20
	}
	if err := cfg.Validate(); err != nil {
		return Settings{}, fmt.Errorf("kafka producer settings: %w", err)
	}
	return s, nil
}
