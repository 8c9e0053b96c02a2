package gcs

import (
	"context"
	"fmt"
	"io"
	"sync/atomic"
	"testing"

	"github.com/fsouza/fake-gcs-server/fakestorage"

	"github.com/kannika/armory/pkg/storage"
	"github.com/kannika/armory/pkg/storage/storagetest"
)

// TestAcceptance runs the real GCS client against fake-gcs-server on
// loopback, reached through gcsBucket.endpoint as a user would set it.
func TestAcceptance(t *testing.T) {
	srv, err := fakestorage.NewServerWithOptions(fakestorage.Options{Scheme: "http", Host: "127.0.0.1", Port: 0, Writer: io.Discard})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	var n atomic.Int32
	storagetest.Run(t, func(t *testing.T) (storage.Bucket, storage.Bucket) {
		bucket := fmt.Sprintf("armory-test-%d", n.Add(1))
		srv.CreateBucketWithOpts(fakestorage.CreateBucketOpts{Name: bucket})
		open := func() storage.Bucket {
			b, err := New(context.Background(), Config{Bucket: bucket, Prefix: "prod/", Endpoint: srv.URL()})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { b.Close() })
			return b
		}
		return open(), open()
	})
}

func TestLocationAndEndpoint(t *testing.T) {
	b, err := New(context.Background(), Config{Bucket: "my-company-kafka-backups", Prefix: "/prod/", Endpoint: "http://127.0.0.1:4443"})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if got := b.Location(); got != "gs://my-company-kafka-backups/prod" {
		t.Errorf("Location = %q", got)
	}
	if _, err := New(context.Background(), Config{Bucket: "b", Endpoint: "not a url"}); err == nil {
		t.Error("an endpoint that is not a URL was accepted")
	}
}
