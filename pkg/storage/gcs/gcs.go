// Package gcs stores objects in a Google Cloud Storage bucket, under an
// optional prefix, through cloud.google.com/go/storage.
package gcs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	gcstorage "cloud.google.com/go/storage"
	"google.golang.org/api/googleapi"
	"google.golang.org/api/iterator"
	"google.golang.org/api/option"

	"github.com/kannika/armory/pkg/storage"
)

// Config says which bucket and how to reach it.
type Config struct {
	Bucket string
	// Prefix puts every object under this path ("prod" → prod/<name>).
	Prefix string
	// Endpoint is a GCS-compatible endpoint, e.g. an emulator; empty means
	// Google's (or $STORAGE_EMULATOR_HOST when set).
	Endpoint string
	// ServiceAccountJSON is a service-account key; nil means the ambient
	// credentials (GKE Workload Identity), or none with an Endpoint.
	ServiceAccountJSON []byte
}

const (
	// maxAttempts bounds the client's own tries of one call.
	maxAttempts = 4
	// uploadTimeout bounds one segment's upload, retries included.
	uploadTimeout = 5 * time.Minute
)

// Bucket is a GCS bucket.
type Bucket struct {
	client *gcstorage.Client
	bucket *gcstorage.BucketHandle
	cfg    Config
	prefix string // "" or "prefix/"
}

var _ storage.Bucket = (*Bucket)(nil)

// New connects to the bucket. It makes no request.
func New(ctx context.Context, cfg Config) (*Bucket, error) {
	// JSON reads: the XML API has no emulator support and gains nothing here.
	opts := []option.ClientOption{gcstorage.WithJSONReads()}
	switch {
	case cfg.ServiceAccountJSON != nil:
		opts = append(opts, option.WithAuthCredentialsJSON(option.ServiceAccount, cfg.ServiceAccountJSON))
	case cfg.Endpoint != "":
		opts = append(opts, option.WithoutAuthentication())
	}
	if cfg.Endpoint != "" {
		endpoint, err := apiEndpoint(cfg.Endpoint)
		if err != nil {
			return nil, err
		}
		opts = append(opts, option.WithEndpoint(endpoint))
	}
	client, err := gcstorage.NewClient(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("create GCS client: %w", err)
	}
	// The client retries a failed call (idempotent ones: every upload here
	// has a precondition) a few times, then returns the error: the worker
	// retries too, and reports what keeps failing in the status. Without a
	// bound, a fault would be retried inside the client, unseen.
	bucket := client.Bucket(cfg.Bucket).Retryer(gcstorage.WithMaxAttempts(maxAttempts), gcstorage.WithPolicy(gcstorage.RetryIdempotent))
	b := &Bucket{client: client, bucket: bucket, cfg: cfg}
	if p := strings.Trim(cfg.Prefix, "/"); p != "" {
		b.prefix = p + "/"
	}
	return b, nil
}

// apiEndpoint turns "http://host:port" into the JSON API's base URL.
func apiEndpoint(endpoint string) (string, error) {
	u, err := url.Parse(endpoint)
	if err != nil || u.Host == "" {
		return "", fmt.Errorf("gcsBucket.endpoint %q is not a URL such as http://fake-gcs:4443", endpoint)
	}
	if u.Path == "" || u.Path == "/" {
		u.Path = "/storage/v1/"
	}
	return u.String(), nil
}

// Location is gs://bucket/prefix.
func (b *Bucket) Location() string {
	return strings.TrimSuffix("gs://"+b.cfg.Bucket+"/"+b.prefix, "/")
}

// Close closes the client.
func (b *Bucket) Close() error { return b.client.Close() }

// Create uploads with a DoesNotExist precondition: GCS refuses the write
// (412) if the name exists, which fences a stale writer.
func (b *Bucket) Create(ctx context.Context, name string, data io.Reader, metadata map[string]string) error {
	// The upload must never see a source that fails midway: the GCS writer
	// can commit what it was given so far as a whole object. Segments are
	// in memory already; any other source is read in full first.
	_, isBytes := data.(*bytes.Reader)
	if _, inMemory := data.(storage.InMemory); !isBytes && !inMemory {
		buf, err := io.ReadAll(data)
		if err != nil {
			return fmt.Errorf("upload %s: read the object: %w", name, err)
		}
		data = bytes.NewReader(buf)
	}
	// A deadline, so that a stalled connection ends as an error the worker
	// retries and reports.
	ctx, cancel := context.WithTimeout(ctx, uploadTimeout)
	defer cancel() // an abandoned upload is cancelled, never committed
	w := b.bucket.Object(b.prefix + name).If(gcstorage.Conditions{DoesNotExist: true}).NewWriter(ctx)
	w.Metadata = metadata
	w.ContentType = "application/octet-stream"
	// One request, no 16 MiB chunk buffer per upload: segments are already
	// in memory, and a failed upload is retried whole by the caller (an
	// unfinished upload is never committed).
	w.ChunkSize = 0
	if _, err := io.Copy(w, data); err != nil {
		// Abort the request before anything ends the body: closing the
		// writer (even CloseWithError) can let what was sent so far be
		// committed as a whole object. Close then only waits for the
		// cancelled upload.
		cancel()
		_ = w.Close()
		return fmt.Errorf("upload %s: %w", name, err)
	}
	if err := w.Close(); err != nil {
		var apiErr *googleapi.Error
		if errors.As(err, &apiErr) && apiErr.Code == http.StatusPreconditionFailed {
			return fmt.Errorf("%s: %w", name, storage.ErrExists)
		}
		return fmt.Errorf("upload %s: %w", name, err)
	}
	return nil
}

// explain turns the errors a misconfigured Storage gives into what to do.
func (b *Bucket) explain(err error) error {
	var apiErr *googleapi.Error
	switch {
	case errors.Is(err, gcstorage.ErrBucketNotExist), errors.As(err, &apiErr) && apiErr.Code == http.StatusNotFound:
		return fmt.Errorf("GCS bucket %q does not exist (%v); create it, or correct spec.gcsBucket.bucket of the Storage", b.cfg.Bucket, err)
	case errors.As(err, &apiErr) && (apiErr.Code == http.StatusForbidden || apiErr.Code == http.StatusUnauthorized):
		return fmt.Errorf("access to GCS bucket %q refused (%v); grant the worker's identity roles/storage.objectUser on the bucket (roles/storage.objectViewer suffices for a Restore), or check the Credentials' key", b.cfg.Bucket, err)
	}
	return err
}

// Open reads an object.
func (b *Bucket) Open(ctx context.Context, name string) (io.ReadCloser, error) {
	r, err := b.bucket.Object(b.prefix + name).NewReader(ctx)
	if errors.Is(err, gcstorage.ErrObjectNotExist) {
		return nil, fmt.Errorf("%s: %w", name, storage.ErrNotExist)
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	return r, nil
}

// Attributes returns an object's size and metadata.
func (b *Bucket) Attributes(ctx context.Context, name string) (storage.ObjectAttrs, error) {
	attrs, err := b.bucket.Object(b.prefix + name).Attrs(ctx)
	if errors.Is(err, gcstorage.ErrObjectNotExist) {
		return storage.ObjectAttrs{}, fmt.Errorf("%s: %w", name, storage.ErrNotExist)
	}
	if err != nil {
		return storage.ObjectAttrs{}, fmt.Errorf("attributes of %s: %w", name, err)
	}
	return storage.ObjectAttrs{Name: name, Size: attrs.Size, Metadata: attrs.Metadata, Created: attrs.Created}, nil
}

// List lists objects under prefix, in name order, with their metadata.
func (b *Bucket) List(ctx context.Context, prefix string, fn func(storage.ObjectAttrs) error) error {
	it := b.bucket.Objects(ctx, &gcstorage.Query{Prefix: b.prefix + prefix})
	for {
		attrs, err := it.Next()
		if errors.Is(err, iterator.Done) {
			return nil
		}
		if err != nil {
			what := prefix
			if what == "" {
				what = "the bucket"
			}
			return fmt.Errorf("list %s: %w", what, b.explain(err))
		}
		if err := fn(storage.ObjectAttrs{Name: strings.TrimPrefix(attrs.Name, b.prefix), Size: attrs.Size, Metadata: attrs.Metadata,
			Created: attrs.Created}); err != nil {
			return err
		}
	}
}
