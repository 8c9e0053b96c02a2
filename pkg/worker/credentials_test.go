package worker_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kfake"
)

// TestSASLFromCredentials backs up a Kafka cluster that requires SASL
// SCRAM-SHA-512, with the login read from a Secret through Credentials. The
// password appears nowhere: not in the worker's log, the Deployment-style
// command line, the status or events.
func TestSASLFromCredentials(t *testing.T) {
	t.Parallel()
	const user, password = "armory-backup", "pw-7d1c0ffee-not-in-logs"
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.EnableSASL(),
		kfake.Superuser("SCRAM-SHA-512", user, password), kfake.SeedTopics(1, "secure.events"))
	if err != nil {
		t.Fatal(err)
	}
	defer cluster.Close()

	cfg := saramaConfig()
	cfg.Net.SASL.Enable = true
	cfg.Net.SASL.Mechanism = sarama.SASLTypeSCRAMSHA512
	cfg.Net.SASL.User, cfg.Net.SASL.Password = user, password
	cfg.Net.SASL.SCRAMClientGeneratorFunc = testSCRAMClient
	p, err := sarama.NewSyncProducer(cluster.ListenAddrs(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	want := produced{}
	for i := range 200 {
		m := recordMessage("secure.events", 0, i, time.Date(2026, 11, 25, 9, 0, 0, 0, time.UTC))
		if _, _, err := p.SendMessage(m); err != nil {
			t.Fatal(err)
		}
		want[0] = append(want[0], fromMessage(m))
	}
	p.Close()

	s := setupBackupOn(t, cluster.ListenAddrs(), []string{"secure.events"},
		"  sourceCredentialsFrom: {credentialsRef: {name: kafka-sasl}}\n", false)
	if out, errOut, err := env.Kubectl(t, fmt.Sprintf(`apiVersion: v1
kind: Secret
metadata: {name: kafka-user}
stringData: {username: %s, password: %s}
---
apiVersion: kannika.io/v1alpha
kind: Credentials
metadata: {name: kafka-sasl}
spec:
  sasl:
    mechanism: SCRAM-SHA-512
    usernameFrom: {secretKeyRef: {name: kafka-user, key: username}}
    passwordFrom: {secretKeyRef: {name: kafka-user, key: password}}
`, user, password), "apply", "-n", s.ns, "-f", "-"); err != nil {
		t.Fatalf("kubectl apply: %v\n%s%s", err, out, errOut)
	}
	w := s.startWorker(t)
	waitCaughtUp(t, s.bucket, "secure.events", want, time.Minute)
	w.stop(t)
	assertExactly(t, s.bucket, "secure.events", want)

	if strings.Contains(w.log.String(), password) || strings.Contains(strings.Join(w.cmd.Args, " "), password) {
		t.Error("the password appears in the worker's log or command line")
	}
	out, _, _ := env.Kubectl(t, "", "get", "backups,events", "-n", s.ns, "-o", "yaml")
	if strings.Contains(out, password) {
		t.Error("the password appears in a status or an event")
	}
}
