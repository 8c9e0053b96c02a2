package kafka

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/IBM/sarama"
)

// ConnectTimeout bounds how long Connect waits for a first answer from the
// cluster. sarama's own attempts (each broker in turn, each dial up to its
// DialTimeout, retried) can otherwise add up to minutes, e.g. a TLS client
// against a plaintext listener, whose handshake never completes.
const ConnectTimeout = 30 * time.Second

// ErrStopped: Connect gave up because it was told to stop.
var ErrStopped = errors.New("stopped while connecting to Kafka")

// Connect opens a client to the cluster. It returns when the client is
// ready; when ctx ends (a lost Lease: ctx.Err()) or stop closes (SIGTERM:
// ErrStopped); or after ConnectTimeout, with an error that says what was
// tried and, for a TLS connection, that a plaintext listener fails so. A
// client that connects after Connect gave up is closed.
func Connect(ctx context.Context, stop <-chan struct{}, s Settings) (sarama.Client, error) {
	type result struct {
		client sarama.Client
		err    error
	}
	done := make(chan result, 1)
	go func() {
		c, err := sarama.NewClient(s.Brokers, s.Config)
		done <- result{c, err}
	}()
	abandon := func() {
		go func() {
			if r := <-done; r.client != nil {
				_ = r.client.Close()
			}
		}()
	}
	timer := time.NewTimer(ConnectTimeout)
	defer timer.Stop()
	select {
	case r := <-done:
		if r.err != nil {
			return nil, s.explain(r.err)
		}
		return r.client, nil
	case <-ctx.Done():
		abandon()
		return nil, ctx.Err()
	case <-stop:
		abandon()
		return nil, ErrStopped
	case <-timer.C:
		abandon()
		return nil, s.explain(fmt.Errorf("no broker answered within %s", ConnectTimeout))
	}
}

// explain adds to a connection error what the settings make likely.
func (s Settings) explain(err error) error {
	if s.Config.Net.TLS.Enable {
		return fmt.Errorf("%w (the connection uses TLS, from security.protocol or the Credentials: if these listeners are plaintext, set security.protocol to PLAINTEXT or SASL_PLAINTEXT)", err)
	}
	sasl := s.Config.Net.SASL
	if errors.Is(err, sarama.ErrSASLAuthenticationFailed) && sasl.Enable {
		// The login itself: never the password, which the user can check
		// in the Secret.
		return fmt.Errorf("%w (the brokers refused the SASL login of user %q with %s: check the username and password in the Secret that the Credentials name)",
			err, sasl.User, sasl.Mechanism)
	}
	if strings.Contains(err.Error(), "EOF") && sasl.Enable {
		// Some brokers close the connection on a refused login instead of
		// answering SASL_AUTHENTICATION_FAILED.
		return fmt.Errorf("%w (the brokers closed the connection during the SASL handshake with %s: check the mechanism, that the listener takes SASL, and the username and password in the Secret that the Credentials name)",
			err, sasl.Mechanism)
	}
	return err
}
