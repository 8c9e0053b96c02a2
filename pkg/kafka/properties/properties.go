// Package properties is the table of Kafka client properties an EventHub
// may set, and their validation. It imports no Kafka client, so that the
// controller can validate EventHubs without one.
package properties

import (
	"fmt"
	"net"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation/field"
)

// Property is a Kafka client property an EventHub may set.
type Property struct {
	// Name is the familiar Kafka client property name.
	Name string
	// Doc says what the property does in Armory; docs/eventhub-properties.md
	// lists the same text.
	Doc string
	// check returns why a value is unusable, or "".
	check func(value string) string
}

// Supported are the Kafka client properties Armory understands.
// Anything else is reported, never silently ignored.
var Supported = []Property{
	{"bootstrap.servers", "Comma-separated host:port list of brokers to connect to first. Required.", checkServers},
	{"client.id", "Client id sent to the brokers, shown in their logs and quotas. Default: armory.", checkNonEmpty},
	{"security.protocol", "PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL, in any case as Kafka accepts. Default: from the Credentials referenced (SASL_SSL or SASL_PLAINTEXT for sasl, SSL for mTls), else PLAINTEXT.",
		checkOneOfFold("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")},
	{"request.timeout.ms", "How long to wait for a broker's answer to a request.", checkInt(1, 3_600_000)},
	{"socket.connection.setup.timeout.ms", "How long to wait for a connection to a broker.", checkInt(1, 3_600_000)},
	{"metadata.max.age.ms", "How often cluster metadata is refreshed, which is how quickly new partitions are found.", checkInt(1000, 86_400_000)},
	{"retry.backoff.ms", "Wait between retries of a failed request.", checkInt(0, 3_600_000)},
	{"fetch.min.bytes", "Backups: the least data a broker returns for a fetch, unless fetch.max.wait.ms passes first.", checkInt(1, 1<<30)},
	{"fetch.max.wait.ms", "Backups: how long a broker may wait to fill fetch.min.bytes.", checkInt(1, 60_000)},
	{"max.partition.fetch.bytes", "Backups: the most data fetched per partition per request. When unset, the worker sizes it from its --memory-budget; a value set here is used as is.", checkInt(1024, 1<<30)},
	{"acks", "Restores: acknowledgements required per write. A restore writes exactly once, which needs all (or -1); nothing else is accepted. Default: all.", checkOneOf("all", "-1")},
	{"compression.type", "Restores: compression of produced batches: none, gzip, snappy, lz4 or zstd. Default: none.",
		checkOneOf("none", "gzip", "snappy", "lz4", "zstd")},
	{"compression.codec", "Restores: the older name of compression.type.", checkOneOf("none", "gzip", "snappy", "lz4", "zstd")},
	{"batch.size", "Restores: bytes gathered per partition before a batch is sent.", checkInt(1, 1<<30)},
	{"linger.ms", "Restores: how long to wait for more records before sending a batch.", checkInt(0, 60_000)},
	{"max.request.size", "Restores: the largest request sent to a broker; must be at least the largest record.", checkInt(1024, 1<<30)},
	{"replication.factor", "Restores: replication factor of the topics createTopics creates. Default: the cluster's default.replication.factor.", checkInt(1, 32767)},
}

// Validate returns one error for each property that is unsupported
// or has an unusable value, naming the property under path.
func Validate(path *field.Path, props map[string]string) field.ErrorList {
	known := make(map[string]Property, len(Supported))
	for _, p := range Supported {
		known[p.Name] = p
	}
	names := make([]string, 0, len(props))
	for name := range props {
		names = append(names, name)
	}
	sort.Strings(names)

	var errs field.ErrorList
	if _, ok := props["bootstrap.servers"]; !ok {
		errs = append(errs, field.Required(path.Key("bootstrap.servers"), "set it to the brokers, e.g. kafka-0.kafka:9092,kafka-1.kafka:9092"))
	}
	for _, name := range names {
		p, ok := known[name]
		switch {
		case !ok && isCredentialProperty(name):
			errs = append(errs, field.Forbidden(path.Key(name),
				"authentication is set in a Credentials resource referenced by the Backup or Restore, never in an EventHub; remove it"))
		case !ok:
			errs = append(errs, field.NotSupported(path.Key(name), name, Names()))
		default:
			if why := p.check(props[name]); why != "" {
				errs = append(errs, field.Invalid(path.Key(name), props[name], why))
			}
		}
	}
	return errs
}

// Names lists the supported property names in order.
func Names() []string {
	names := make([]string, len(Supported))
	for i, p := range Supported {
		names[i] = p.Name
	}
	return names
}

func isCredentialProperty(name string) bool {
	return strings.HasPrefix(name, "sasl.") || strings.HasPrefix(name, "ssl.")
}

// hostName is a DNS name: labels of letters, digits, '-' and '_' (which
// container hosts often use, and resolvers accept), joined by '.'.
var hostName = regexp.MustCompile(`^[A-Za-z0-9_]([A-Za-z0-9_-]*[A-Za-z0-9_])?(\.[A-Za-z0-9_]([A-Za-z0-9_-]*[A-Za-z0-9_])?)*\.?$`)

func checkServers(v string) string {
	for _, server := range strings.Split(v, ",") {
		server = strings.TrimSpace(server)
		host, port, err := net.SplitHostPort(server)
		if err != nil || host == "" {
			return fmt.Sprintf("%q is not host:port; write e.g. kafka-0.kafka:9092,kafka-1.kafka:9092", server)
		}
		if net.ParseIP(host) == nil && !hostName.MatchString(host) {
			return fmt.Sprintf("%q: %q is not a host name or IP address (letters, digits, '-', '_' and '.' only); write e.g. kafka-0.kafka:9092", server, host)
		}
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return fmt.Sprintf("%q has no valid port (1-65535)", server)
		}
	}
	return ""
}

func checkNonEmpty(v string) string {
	if strings.TrimSpace(v) == "" {
		return "must not be empty; remove it to use the default"
	}
	return ""
}

// checkOneOfFold is checkOneOf ignoring case.
func checkOneOfFold(values ...string) func(string) string {
	check := checkOneOf(values...)
	return func(v string) string { return check(strings.ToUpper(v)) }
}

func checkOneOf(values ...string) func(string) string {
	return func(v string) string {
		for _, ok := range values {
			if v == ok {
				return ""
			}
		}
		return "must be one of " + strings.Join(values, ", ")
	}
}

func checkInt(min, max int64) func(string) string {
	return func(v string) string {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return "must be a whole number"
		}
		if n < min || n > max {
			return fmt.Sprintf("must be between %d and %d", min, max)
		}
		return ""
	}
}
