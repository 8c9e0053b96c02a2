package worker_test

import (
	"crypto/sha512"
	"hash"

	"github.com/IBM/sarama"
	"github.com/xdg-go/scram"
)

// testSCRAMClient is the test producer's own SCRAM-SHA-512 client.
func testSCRAMClient() sarama.SCRAMClient { return &scramClient{} }

type scramClient struct{ conv *scram.ClientConversation }

func (c *scramClient) Begin(user, password, authzID string) error {
	client, err := scram.HashGeneratorFcn(func() hash.Hash { return sha512.New() }).NewClient(user, password, authzID)
	if err != nil {
		return err
	}
	c.conv = client.NewConversation()
	return nil
}

func (c *scramClient) Step(challenge string) (string, error) { return c.conv.Step(challenge) }
func (c *scramClient) Done() bool                            { return c.conv.Done() }
