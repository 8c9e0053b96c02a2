package worker_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/kannika/armory/pkg/kafka"
	"github.com/kannika/armory/pkg/testenv"
)

// TestNoSecretReachesAnyOutput is the secrets audit. A Backup reads a
// SASL_SSL cluster (a SCRAM-SHA-512 password; the CA from a Secret) and
// writes GCS with a service-account key; a Restore reads that bucket with
// the same key and writes a cluster that requires a client certificate
// (mTLS). The controller and both workers run at -v=10, where client-go
// dumps every request and response, Secrets' included. No secret value, raw
// or base64, appears in any log line, command line, status, event,
// Deployment, Job, pod template or metrics output.
func TestNoSecretReachesAnyOutput(t *testing.T) {
	t.Parallel()
	ca, caKey := newCA(t)
	caPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Raw})
	pool := x509.NewCertPool()
	pool.AddCert(ca)

	// The source: TLS and SASL SCRAM-SHA-512.
	const user, password = "armory-audit", "pw-audit-51f3e9-never-printed"
	sourceCert := newCert(t, ca, caKey, "kafka", true)
	source, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.EnableSASL(), kfake.Superuser("SCRAM-SHA-512", user, password),
		kfake.TLS(&tls.Config{Certificates: []tls.Certificate{sourceCert.pair}, MinVersion: tls.VersionTLS12}),
		kfake.SeedTopics(2, "audit.events"))
	if err != nil {
		t.Fatal(err)
	}
	defer source.Close()
	cfg := saramaConfig()
	cfg.Net.TLS.Enable, cfg.Net.TLS.Config = true, &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	cfg.Net.SASL.Enable, cfg.Net.SASL.Mechanism = true, sarama.SASLTypeSCRAMSHA512
	cfg.Net.SASL.User, cfg.Net.SASL.Password = user, password
	cfg.Net.SASL.SCRAMClientGeneratorFunc = kafka.SCRAMClient("SCRAM-SHA-512")
	p, err := sarama.NewSyncProducer(source.ListenAddrs(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	want := produced{}
	for i := range 300 {
		m := recordMessage("audit.events", int32(i%2), i, time.Date(2026, 12, 2, 9, 0, 0, 0, time.UTC))
		if _, _, err := p.SendMessage(m); err != nil {
			t.Fatal(err)
		}
		want[m.Partition] = append(want[m.Partition], fromMessage(m))
	}
	p.Close()

	// The target: client certificates required.
	targetCert, clientCert := newCert(t, ca, caKey, "kafka", true), newCert(t, ca, caKey, "armory-restore", false)
	target, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.TLS(&tls.Config{Certificates: []tls.Certificate{targetCert.pair},
		ClientCAs: pool, ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS12}))
	if err != nil {
		t.Fatal(err)
	}
	defer target.Close()

	// GCS behind a service-account key; its token server hands out a
	// token that must not be printed either.
	const token = "ya29.audit-token-0c4fe7"
	var tokenRequests atomic.Int32
	tokens := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tokenRequests.Add(1)
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"access_token":%q,"token_type":"Bearer","expires_in":3600}`, token)
	}))
	defer tokens.Close()
	saJSON, saKeyPEM := serviceAccountKey(t, tokens.URL+"/token")

	s := setupBackupOn(t, source.ListenAddrs(), []string{"audit.events"},
		"  sourceCredentialsFrom: {credentialsRef: {name: kafka-sasl}}\n  sinkCredentialsFrom: {credentialsRef: {name: gcs-key}}\n", false)
	b64 := func(b []byte) string { return base64.StdEncoding.EncodeToString(b) }
	manifest := fmt.Sprintf(`apiVersion: v1
kind: Secret
metadata: {name: audit-secrets}
data: {username: %s, password: %s, ca.crt: %s, key.json: %s, tls.crt: %s, tls.key: %s}
---
apiVersion: kannika.io/v1alpha
kind: Credentials
metadata: {name: kafka-sasl}
spec:
  sasl:
    mechanism: SCRAM-SHA-512
    usernameFrom: {secretKeyRef: {name: audit-secrets, key: username}}
    passwordFrom: {secretKeyRef: {name: audit-secrets, key: password}}
    sslConf:
      enabled: true
      caCertificatePemFrom: {secretKeyRef: {name: audit-secrets, key: ca.crt}}
---
apiVersion: kannika.io/v1alpha
kind: Credentials
metadata: {name: gcs-key}
spec:
  gcp:
    serviceAccountJsonFrom: {secretKeyRef: {name: audit-secrets, key: key.json}}
---
apiVersion: kannika.io/v1alpha
kind: Credentials
metadata: {name: kafka-mtls}
spec:
  mTls:
    certificatePemFrom:   {secretKeyRef: {name: audit-secrets, key: tls.crt}}
    privateKeyPemFrom:    {secretKeyRef: {name: audit-secrets, key: tls.key}}
    caCertificatePemFrom: {secretKeyRef: {name: audit-secrets, key: ca.crt}}
---
apiVersion: kannika.io/v1alpha
kind: EventHub
metadata: {name: target-kafka}
spec: {kafka: {properties: {bootstrap.servers: %q, metadata.max.age.ms: "1000"}}}
---
apiVersion: kannika.io/v1alpha
kind: Restore
metadata: {name: audit-restore}
spec:
  source: my-storage
  sink: target-kafka
  sourceCredentialsFrom: {credentialsRef: {name: gcs-key}}
  sinkCredentialsFrom: {credentialsRef: {name: kafka-mtls}}
  enabled: true
  config:
    createTopics: true
    topics:
      - {source: audit.events, target: audit.events.restored}
`, b64([]byte(user)), b64([]byte(password)), b64(caPEM), b64(saJSON), b64(clientCert.certPEM), b64(clientCert.keyPEM),
		strings.Join(target.ListenAddrs(), ","))
	if out, errOut, err := env.Kubectl(t, manifest, "apply", "-n", s.ns, "-f", "-"); err != nil {
		t.Fatalf("kubectl apply: %v\n%s%s", err, out, errOut)
	}

	binary := testenv.BuildArmoryWithoutRace(t)
	controllerMetrics := testenv.FreeAddr(t)
	controller := exec.Command(binary, "controller", "-v=10", "--kubeconfig", env.Kubeconfig, "--namespace", s.ns,
		"--leader-election-namespace", s.ns, "--worker-image", "armory:audit",
		"--metrics-bind-address", controllerMetrics, "--health-probe-bind-address", "0")
	var controllerLog testenv.Output
	controller.Stdout, controller.Stderr = &controllerLog, &controllerLog
	controller.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := controller.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = controller.Process.Signal(syscall.SIGTERM); _ = controller.Wait() }()

	s.workerArgs, s.binary = []string{"-v=10"}, binary
	backup := s.startWorker(t)
	waitCaughtUp(t, s.bucket, "audit.events", want, time.Minute)
	metrics := map[string]string{"the backup worker": scrape(t, backup.metricsAddr)}
	backup.stop(t)
	assertExactly(t, s.bucket, "audit.events", want)

	rs := &restoreSetup{backupSetup: s, name: "audit-restore"}
	restore := rs.startRestoreWorker(t, "-v=10")
	// The restore may end before a scrape: keep the last one that answered.
	var restoreMetrics string
	for !isDone(restore) {
		if m, err := get(restore.metricsAddr); err == nil {
			restoreMetrics = m
		}
		time.Sleep(50 * time.Millisecond)
	}
	if code := restore.wait(t, time.Minute); code != 0 {
		t.Fatalf("the restore exited %d:\n%s", code, restore.log.String())
	}
	if r := rs.restore(t); r.Status.Records != fmt.Sprintf("%d/%d", total(want), total(want)) {
		t.Fatalf("the Restore says %q records, want all %d: the credentials were not all used", r.Status.Records, total(want))
	}
	metrics["the restore worker"] = restoreMetrics
	metrics["the controller"] = scrape(t, controllerMetrics)
	if tokenRequests.Load() == 0 {
		t.Error("no worker asked for a token with the service-account key: the GCP Credentials were not used")
	}

	outputs := map[string]string{
		"the controller's log":     testenv.LogText(controllerLog.String()),
		"the backup worker's log":  testenv.LogText(backup.log.String()),
		"the restore worker's log": testenv.LogText(restore.log.String()),
		"a command line":           strings.Join(append(append(controller.Args, backup.cmd.Args...), restore.cmd.Args...), " "),
	}
	for name, log := range outputs {
		if strings.HasSuffix(name, "log") && !strings.Contains(log, "Response Body") && !strings.Contains(log, "body=") {
			t.Errorf("%s at -v=10 has no response body: the audit would not see a leak", name)
		}
	}
	for name, m := range metrics {
		if !strings.Contains(m, "# TYPE") {
			t.Errorf("%s's metrics could not be read: %.200q", name, m)
		}
		outputs[name+"'s metrics"] = m
	}
	yaml, errOut, err := env.Kubectl(t, "", "get", "backups,restores,eventhubs,storages,credentials,events,deployments,jobs,pods,serviceaccounts,configmaps",
		"-n", s.ns, "-o", "yaml")
	if err != nil {
		t.Fatalf("kubectl get: %v\n%s", err, errOut)
	}
	if !strings.Contains(yaml, "kind: Deployment") || !strings.Contains(yaml, "kind: Job") {
		t.Errorf("the controller made no Deployment or no Job: the audit would not see their pod templates:\n%.2000s", yaml)
	}
	outputs["the resources (status, events, Deployments, Jobs, pod templates)"] = yaml

	// A secret is seen by a distinctive piece of it: the password whole,
	// and a line from the middle of each key.
	middle := func(pemText string) string {
		lines := strings.Split(strings.TrimSpace(pemText), "\n")
		return lines[len(lines)/2]
	}
	encodedSA := b64(saJSON)
	secrets := map[string]string{
		"the SASL password":                     password,
		"the SASL password, base64":             b64([]byte(password)),
		"the service-account key":               middle(saKeyPEM),
		"the service-account JSON, base64":      encodedSA[len(encodedSA)/2 : len(encodedSA)/2+40],
		"the GCS access token":                  token,
		"the client certificate's key":          middle(string(clientCert.keyPEM)),
		"the client certificate's key, base64":  b64(clientCert.keyPEM)[40:80],
		"the service-account key's PEM heading": "BEGIN PRIVATE KEY",
		"the client key's PEM heading":          "PRIVATE KEY-----",
	}
	for where, text := range outputs {
		for what, secret := range secrets {
			if strings.Contains(text, secret) {
				i := strings.Index(text, secret)
				t.Errorf("%s appears in %s: …%s…", what, where, strings.ReplaceAll(text[max(0, i-120):i], "\n", " "))
			}
		}
	}
}

// scrape reads a /metrics endpoint.
func scrape(t *testing.T, addr string) string {
	t.Helper()
	body, err := get(addr)
	if err != nil {
		t.Fatalf("scrape %s: %v", addr, err)
	}
	return body
}

func get(addr string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/metrics", nil)
	if err != nil {
		return "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return string(body), err
}
