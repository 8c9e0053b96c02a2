package gcs

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
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

// TestRefusalsSayWhatToDo: what GCS answers when the bucket is missing or
// the identity has no access, as the user reads it in the status: the
// bucket's name, the field or role to fix, and GCS's own words.
func TestRefusalsSayWhatToDo(t *testing.T) {
	for _, tc := range []struct {
		code int
		body string
		want []string
	}{
		{http.StatusNotFound, `{"error":{"code":404,"message":"The specified bucket does not exist.","errors":[{"reason":"notFound"}]}}`,
			[]string{`list the bucket: GCS bucket "backups-prod" does not exist`, "The specified bucket does not exist", "create it, or correct spec.gcsBucket.bucket of the Storage"}},
		{http.StatusForbidden, `{"error":{"code":403,"message":"armory@p.iam.gserviceaccount.com does not have storage.objects.list access to the Google Cloud Storage bucket.","errors":[{"reason":"forbidden"}]}}`,
			[]string{`list the bucket: access to GCS bucket "backups-prod" refused`, "does not have storage.objects.list access",
				"grant the worker's identity roles/storage.objectUser on the bucket", "check the Credentials' key"}},
		{http.StatusUnauthorized, `{"error":{"code":401,"message":"Invalid Credentials","errors":[{"reason":"authError"}]}}`,
			[]string{`access to GCS bucket "backups-prod" refused`, "Invalid Credentials", "check the Credentials' key"}},
	} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(tc.code)
			_, _ = io.WriteString(w, tc.body)
		}))
		b, err := New(context.Background(), Config{Bucket: "backups-prod", Endpoint: srv.URL})
		if err != nil {
			t.Fatal(err)
		}
		err = b.List(context.Background(), "", func(storage.ObjectAttrs) error { return nil })
		for _, want := range tc.want {
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("HTTP %d: error %v; want it to contain %q", tc.code, err, want)
			}
		}
		b.Close()
		srv.Close()
	}
}
