// Package storage is where backed-up objects live: a small Bucket interface,
// implemented by a GCS bucket (storage/gcs) and a volume directory
// (storage/volume), both held to one acceptance test (storage/storagetest).
package storage

import (
	"context"
	"errors"
	"io"
	"time"
)

// Errors every Bucket returns, for errors.Is.
var (
	// ErrExists: Create found the object already there. Another writer got
	// there first; the object is never overwritten.
	ErrExists = errors.New("object already exists")
	// ErrNotExist: the object does not exist.
	ErrNotExist = errors.New("object does not exist")
)

// ObjectAttrs describe a stored object.
type ObjectAttrs struct {
	Name     string
	Size     int64
	Metadata map[string]string
	// Created is when the object was stored.
	Created time.Time
}

// Bucket holds immutable objects named by slash-separated paths.
type Bucket interface {
	// Create writes an object that must not exist yet, with its metadata,
	// atomically: readers see all of it or nothing. It returns ErrExists if
	// the name is taken. The object is stored only when Create returns nil.
	Create(ctx context.Context, name string, data io.Reader, metadata map[string]string) error
	// Open reads an object.
	Open(ctx context.Context, name string) (io.ReadCloser, error)
	// Attributes returns an object's size and metadata.
	Attributes(ctx context.Context, name string) (ObjectAttrs, error)
	// List calls fn for each object whose name starts with prefix, in name
	// order, with its metadata. An error from fn stops the listing.
	List(ctx context.Context, prefix string, fn func(ObjectAttrs) error) error
	// Location describes the bucket for people: gs://bucket/prefix or a path.
	Location() string
	Close() error
}

// InMemory is a Create source held entirely in memory, so reading it cannot
// fail midway (a GCS upload must never commit a source cut short).
// *bytes.Reader is one; other sources are read in full first.
type InMemory interface {
	io.Reader
	InMemory()
}

// Buffers is an InMemory source that hands over the buffers holding its
// bytes, so that a bucket may write them as they are: a volume writes a
// large one unbuffered, straight from those buffers to its device.
type Buffers interface {
	InMemory
	// Buffers returns the bytes not read yet, in order, and counts them
	// read. The buffers must stay unchanged until Create returns; buffers
	// aligned to 4 KiB in memory and in length are what a volume writes
	// unbuffered.
	Buffers() [][]byte
}

// TempRemover is a Bucket whose writers leave temporary files behind when
// they are killed mid-write (a volume: a temporary file, then a link).
type TempRemover interface {
	// RemoveTemp deletes the temporary files directly under prefix (a
	// folder, ending in "/") and returns how many it removed. Call it only
	// where no Create under prefix is running that must succeed: a Create
	// whose temporary file is removed fails and stores nothing.
	RemoveTemp(ctx context.Context, prefix string) (int, error)
}

// errProbed stops Probe's listing at its first object.
var errProbed = errors.New("probed")

// Probe checks that a bucket can be listed (it exists, and the credentials
// may read it) by listing at most one object. A worker calls it at start,
// so a wrong bucket is reported before any work, not at the first upload.
func Probe(ctx context.Context, b Bucket) error {
	err := b.List(ctx, "", func(ObjectAttrs) error { return errProbed })
	if errors.Is(err, errProbed) {
		return nil
	}
	return err
}
