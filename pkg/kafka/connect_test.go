package kafka

import (
	"context"
	"strings"
	"testing"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kfake"
)

// TestConnectRefusedLoginSaysWhatToCheck: a wrong SASL password is the most
// common first failure of a secured cluster. The error a user reads in the
// status names it as a refused login and where the login comes from, and
// never carries the password.
func TestConnectRefusedLoginSaysWhatToCheck(t *testing.T) {
	const user, password, wrong = "armory-backup", "right-pw-91f3", "wrong-pw-5c2e"
	for _, mechanism := range []string{"PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"} {
		t.Run(mechanism, func(t *testing.T) {
			cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.EnableSASL(), kfake.Superuser(mechanism, user, password))
			if err != nil {
				t.Fatal(err)
			}
			defer cluster.Close()
			s, err := NewSettings(map[string]string{"bootstrap.servers": strings.Join(cluster.ListenAddrs(), ","), "security.protocol": "SASL_PLAINTEXT"},
				Auth{SASL: &SASL{Mechanism: mechanism, User: user, Password: wrong}})
			if err != nil {
				t.Fatal(err)
			}
			s.Config.Metadata.Retry.Max = 0
			client, err := Connect(context.Background(), nil, s)
			if err == nil {
				client.Close()
				t.Fatal("connected with a wrong password")
			}
			// kfake closes the connection on a refused login, as some brokers
			// do, rather than answering SASL_AUTHENTICATION_FAILED.
			for _, want := range []string{"during the SASL handshake with " + mechanism, "the username and password in the Secret that the Credentials name"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q; want it to contain %q", err, want)
				}
			}
			if strings.Contains(err.Error(), wrong) || strings.Contains(err.Error(), password) {
				t.Errorf("the error carries a password: %q", err)
			}
		})
	}
}

// TestConnectAuthenticationFailedNamesTheLogin: brokers that answer a wrong
// login with SASL_AUTHENTICATION_FAILED (Apache Kafka does), over the wire
// from sarama's mock broker: the error names the user and the mechanism,
// and where to correct them.
func TestConnectAuthenticationFailedNamesTheLogin(t *testing.T) {
	broker := sarama.NewMockBroker(t, 1)
	defer broker.Close()
	broker.SetHandlerByMap(map[string]sarama.MockResponse{
		"SaslHandshakeRequest": sarama.NewMockSaslHandshakeResponse(t).SetEnabledMechanisms([]string{"PLAIN"}),
		"SaslAuthenticateRequest": sarama.NewMockSaslAuthenticateResponse(t).SetError(sarama.ErrSASLAuthenticationFailed).
			SetAuthBytes([]byte("Authentication failed: Invalid username or password")),
		"ApiVersionsRequest": sarama.NewMockApiVersionsResponse(t).SetApiKeys([]sarama.ApiVersionsResponseKey{
			{ApiKey: 3, MinVersion: 0, MaxVersion: 7},  // Metadata
			{ApiKey: 17, MinVersion: 0, MaxVersion: 1}, // SaslHandshake
			{ApiKey: 18, MinVersion: 0, MaxVersion: 3}, // ApiVersions
			{ApiKey: 36, MinVersion: 0, MaxVersion: 1}, // SaslAuthenticate
		}),
		"MetadataRequest": sarama.NewMockMetadataResponse(t).SetBroker(broker.Addr(), broker.BrokerID()).SetController(broker.BrokerID()),
	})
	s, err := NewSettings(map[string]string{"bootstrap.servers": broker.Addr(), "security.protocol": "SASL_PLAINTEXT"},
		Auth{SASL: &SASL{Mechanism: "PLAIN", User: "armory-backup", Password: "wrong-pw-5c2e"}})
	if err != nil {
		t.Fatal(err)
	}
	s.Config.Metadata.Retry.Max = 0
	client, err := Connect(context.Background(), nil, s)
	if err == nil {
		client.Close()
		t.Fatal("connected although the broker refused the login")
	}
	for _, want := range []string{`the brokers refused the SASL login of user "armory-backup" with PLAIN`, "check the username and password in the Secret that the Credentials name"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q; want it to contain %q", err, want)
		}
	}
	if strings.Contains(err.Error(), "wrong-pw-5c2e") {
		t.Errorf("the error carries the password: %q", err)
	}
}
