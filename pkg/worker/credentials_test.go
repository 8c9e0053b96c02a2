package worker_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/kannika/armory/pkg/kafka"
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
