package kafka

import (
	"crypto/sha256"
	"crypto/sha512"
	"hash"

	"github.com/IBM/sarama"
	"github.com/xdg-go/scram"
)

var (
	sha256Gen scram.HashGeneratorFcn = func() hash.Hash { return sha256.New() }
	sha512Gen scram.HashGeneratorFcn = func() hash.Hash { return sha512.New() }
)

// SCRAMClient is a sarama SCRAM client for "SCRAM-SHA-256" or
// "SCRAM-SHA-512", for any sarama client that needs one.
func SCRAMClient(mechanism string) func() sarama.SCRAMClient {
	if mechanism == "SCRAM-SHA-256" {
		return scramClient(sha256Gen)
	}
	return scramClient(sha512Gen)
}

// scramClient adapts xdg-go/scram (sarama's own test dependency) to sarama.
func scramClient(gen scram.HashGeneratorFcn) func() sarama.SCRAMClient {
	return func() sarama.SCRAMClient { return &scramConversation{gen: gen} }
}

type scramConversation struct {
	gen  scram.HashGeneratorFcn
	conv *scram.ClientConversation
}

func (s *scramConversation) Begin(user, password, authzID string) error {
	client, err := s.gen.NewClient(user, password, authzID)
	if err != nil {
		return err
	}
	s.conv = client.NewConversation()
	return nil
}

func (s *scramConversation) Step(challenge string) (string, error) { return s.conv.Step(challenge) }

func (s *scramConversation) Done() bool { return s.conv.Done() }
