package worker_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/kannika/armory/pkg/kafka"
	"github.com/kannika/armory/pkg/testenv"
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
	cfg.Net.SASL.SCRAMClientGeneratorFunc = kafka.SCRAMClient("SCRAM-SHA-512")
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
	// At -v=10 client-go dumps every request and response body: the
	// Secret's must not be among them.
	s.workerArgs, s.binary = []string{"-v=10"}, testenv.BuildArmoryWithoutRace(t)
	w := s.startWorker(t)
	waitCaughtUp(t, s.bucket, "secure.events", want, time.Minute)
	w.stop(t)
	assertExactly(t, s.bucket, "secure.events", want)

	if !strings.Contains(w.log.String(), "Response Body") && !strings.Contains(w.log.String(), "body=") {
		t.Error("the worker at -v=10 logged no response body: the test would not see a leak")
	}
	for _, secret := range []string{password, base64.StdEncoding.EncodeToString([]byte(password))} {
		if strings.Contains(testenv.LogText(w.log.String()), secret) || strings.Contains(strings.Join(w.cmd.Args, " "), secret) {
			t.Errorf("the password (%s…) appears in the worker's log or command line", secret[:6])
		}
	}
	out, _, _ := env.Kubectl(t, "", "get", "backups,events", "-n", s.ns, "-o", "yaml")
	if strings.Contains(out, password) {
		t.Error("the password appears in a status or an event")
	}
}

// TestMTLSFromCredentials backs up a Kafka cluster that requires TLS client
// certificates, with the certificate, key and CA read from a Secret.
func TestMTLSFromCredentials(t *testing.T) {
	t.Parallel()
	ca, caKey := newCA(t)
	serverCert := newCert(t, ca, caKey, "kafka", true)
	clientCert := newCert(t, ca, caKey, "armory-backup", false)
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	serverTLS := &tls.Config{Certificates: []tls.Certificate{serverCert.pair}, ClientCAs: pool,
		ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS12}
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.TLS(serverTLS), kfake.SeedTopics(1, "mtls.events"))
	if err != nil {
		t.Fatal(err)
	}
	defer cluster.Close()

	cfg := saramaConfig()
	cfg.Net.TLS.Enable = true
	cfg.Net.TLS.Config = &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{clientCert.pair}, MinVersion: tls.VersionTLS12}
	p, err := sarama.NewSyncProducer(cluster.ListenAddrs(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	want := produced{}
	for i := range 100 {
		m := recordMessage("mtls.events", 0, i, time.Date(2026, 11, 25, 9, 0, 0, 0, time.UTC))
		if _, _, err := p.SendMessage(m); err != nil {
			t.Fatal(err)
		}
		want[0] = append(want[0], fromMessage(m))
	}
	p.Close()

	s := setupBackupOn(t, cluster.ListenAddrs(), []string{"mtls.events"},
		"  sourceCredentialsFrom: {credentialsRef: {name: kafka-mtls}}\n", false)
	secret := fmt.Sprintf("apiVersion: v1\nkind: Secret\nmetadata: {name: kafka-client}\ndata: {tls.crt: %s, tls.key: %s, ca.crt: %s}\n",
		base64.StdEncoding.EncodeToString(clientCert.certPEM), base64.StdEncoding.EncodeToString(clientCert.keyPEM),
		base64.StdEncoding.EncodeToString(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Raw})))
	if out, errOut, err := env.Kubectl(t, secret+`---
apiVersion: kannika.io/v1alpha
kind: Credentials
metadata: {name: kafka-mtls}
spec:
  mTls:
    certificatePemFrom:   {secretKeyRef: {name: kafka-client, key: tls.crt}}
    privateKeyPemFrom:    {secretKeyRef: {name: kafka-client, key: tls.key}}
    caCertificatePemFrom: {secretKeyRef: {name: kafka-client, key: ca.crt}}
`, "apply", "-n", s.ns, "-f", "-"); err != nil {
		t.Fatalf("kubectl apply: %v\n%s%s", err, out, errOut)
	}
	w := s.startWorker(t)
	waitCaughtUp(t, s.bucket, "mtls.events", want, time.Minute)
	w.stop(t)
	assertExactly(t, s.bucket, "mtls.events", want)
}

func newCA(t *testing.T) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "armory test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true,
		KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return ca, key
}

type testCert struct {
	pair            tls.Certificate
	certPEM, keyPEM []byte
}

func newCert(t *testing.T, ca *x509.Certificate, caKey *ecdsa.PrivateKey, name string, server bool) testCert {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	if server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.IPAddresses = []net.IP{net.ParseIP("127.0.0.1")}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	c := testCert{certPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		keyPEM: pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})}
	if c.pair, err = tls.X509KeyPair(c.certPEM, c.keyPEM); err != nil {
		t.Fatal(err)
	}
	return c
}

// TestGCPKeyFromCredentials writes to GCS with a service-account key read
// from a Secret through gcp Credentials. The key's token_uri points at a
// token server on loopback, so nothing leaves the machine; the key itself
// appears in no log.
// serviceAccountKey is a GCP service-account key file whose tokens come
// from tokenURL, and its private key's PEM.
func serviceAccountKey(t *testing.T, tokenURL string) (saJSON []byte, keyPEM string) {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	keyPEM = string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
	saJSON, err = json.Marshal(map[string]string{
		"type": "service_account", "project_id": "armory-test", "private_key_id": "test-key-1", "private_key": keyPEM,
		"client_email": "backup-writer@armory-test.iam.gserviceaccount.com", "client_id": "1", "token_uri": tokenURL,
	})
	if err != nil {
		t.Fatal(err)
	}
	return saJSON, keyPEM
}

func TestGCPKeyFromCredentials(t *testing.T) {
	t.Parallel()
	var tokenRequests atomic.Int32
	tokens := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tokenRequests.Add(1)
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"access_token":"local-test-token","token_type":"Bearer","expires_in":3600}`)
	}))
	defer tokens.Close()
	saJSON, _ := serviceAccountKey(t, tokens.URL+"/token")

	topic := unique("gcp.events")
	createTopic(t, topic, 1, nil)
	want := produced{}
	produce(t, topic, 1, 300, want)
	s := setupBackup(t, []string{topic}, "  sinkCredentialsFrom: {credentialsRef: {name: gcs-writer}}\n", false)
	manifest := fmt.Sprintf(`apiVersion: v1
kind: Secret
metadata: {name: gcs-writer-key}
data: {key.json: %s}
---
apiVersion: kannika.io/v1alpha
kind: Credentials
metadata: {name: gcs-writer}
spec:
  gcp:
    serviceAccountJsonFrom:
      secretKeyRef: {name: gcs-writer-key, key: key.json}
`, base64.StdEncoding.EncodeToString(saJSON))
	if out, errOut, err := env.Kubectl(t, manifest, "apply", "-n", s.ns, "-f", "-"); err != nil {
		t.Fatalf("kubectl apply: %v\n%s%s", err, out, errOut)
	}
	s.workerArgs, s.binary = []string{"-v=10"}, testenv.BuildArmoryWithoutRace(t)
	w := s.startWorker(t)
	waitCaughtUp(t, s.bucket, topic, want, time.Minute)
	w.stop(t)
	assertExactly(t, s.bucket, topic, want)
	if tokenRequests.Load() == 0 {
		t.Error("the worker never asked for a token with the service-account key: the Credentials were not used")
	}
	encoded := base64.StdEncoding.EncodeToString(saJSON)
	for _, secret := range []string{"PRIVATE KEY", "local-test-token", encoded[len(encoded)/2 : len(encoded)/2+40]} {
		if strings.Contains(testenv.LogText(w.log.String()), secret) {
			t.Errorf("the key or its token appears in the worker's log at -v=10 (%q)", secret)
		}
	}
}
