// Package volume stores objects as files under a directory, such as a
// mounted PersistentVolumeClaim.
//
// An object is written to a temporary file, synced, then linked to its name:
// link(2) fails if the name exists, so creation is atomic and never
// overwrites. Metadata travel inside the file, ahead of the data, so an
// object and its metadata appear together.
package volume

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/kannika/armory/pkg/storage"
)

// fileMagic starts every object file; a uvarint length and the metadata as
// JSON follow (ending in spaces when padded to 4 KiB, see fileHeader), then
// the object's bytes.
const fileMagic = "ARMOBJ1\n"

// tmpPrefix marks files being written; List skips them.
const tmpPrefix = ".tmp-"

// Bucket is a directory of objects.
type Bucket struct {
	root string
}

var _ storage.Bucket = (*Bucket)(nil)

// New opens (creating if needed) the directory root.
func New(root string) (*Bucket, error) {
	if err := os.MkdirAll(root, 0o750); err != nil {
		return nil, fmt.Errorf("create storage directory: %w", err)
	}
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, err
	}
	return &Bucket{root: abs}, nil
}

// Location is the directory.
func (b *Bucket) Location() string { return b.root }

// Close does nothing: files need no connection.
func (b *Bucket) Close() error { return nil }

func (b *Bucket) path(name string) (string, error) {
	clean := path.Clean(name)
	if name == "" || clean != name || strings.HasPrefix(name, "/") || strings.HasPrefix(name, "../") || name == ".." ||
		strings.HasPrefix(path.Base(name), tmpPrefix) {
		return "", fmt.Errorf("invalid object name %q", name)
	}
	return filepath.Join(b.root, filepath.FromSlash(name)), nil
}

// Create writes the object through a temporary file and links it into place.
func (b *Bucket) Create(ctx context.Context, name string, data io.Reader, metadata map[string]string) (err error) {
	final, err := b.path(name)
	if err != nil {
		return err
	}
	dir := filepath.Dir(final)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, tmpPrefix+"*")
	if err != nil {
		return err
	}
	defer func() {
		_ = tmp.Close()
		_ = os.Remove(tmp.Name())
	}()
	meta, err := json.Marshal(metadata)
	if err != nil {
		return err
	}
	// Straight to the file, no buffer of our own: a buffer per upload would
	// cost a partition's worth of memory for each of hundreds of concurrent
	// uploads. A source held in buffers (a segment's chunks) is written from
	// them, in vectored writes, unbuffered if it is large (direct.go); a
	// source that writes itself out (a bytes.Reader) does so without a copy.
	// The context is checked between writes.
	var body [][]byte
	if src, ok := data.(storage.Buffers); ok {
		body = src.Buffers()
	}
	direct := size(body) >= directMin
	header := fileHeader(meta, direct)
	if _, err := tmp.Write(header); err != nil {
		return err
	}
	// Checked once before the copy too: an empty source never writes.
	if err := ctx.Err(); err != nil {
		return err
	}
	if body != nil {
		_, err = writeBuffers(ctx, tmp, int64(len(header)), body, direct)
	} else {
		_, err = io.Copy(contextWriter{ctx, tmp}, data)
	}
	if err != nil {
		return err
	}
	if err := tmp.Sync(); err != nil {
		return err
	}
	if err := os.Link(tmp.Name(), final); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("%s: %w", name, storage.ErrExists)
		}
		return err
	}
	return syncDir(dir)
}

var _ storage.TempRemover = (*Bucket)(nil)

// RemoveTemp deletes the .tmp-* files a killed Create left in prefix's folder.
func (b *Bucket) RemoveTemp(ctx context.Context, prefix string) (int, error) {
	if !strings.HasSuffix(prefix, "/") {
		return 0, fmt.Errorf("invalid folder %q: it must end in /", prefix)
	}
	dir, err := b.path(strings.TrimSuffix(prefix, "/"))
	if err != nil {
		return 0, err
	}
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	removed := 0
	for _, e := range entries {
		if err := ctx.Err(); err != nil {
			return removed, err
		}
		if e.Type().IsRegular() && strings.HasPrefix(e.Name(), tmpPrefix) {
			if err := os.Remove(filepath.Join(dir, e.Name())); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return removed, err
			}
			removed++
		}
	}
	return removed, nil
}

// syncDir makes the new directory entry durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// contextWriter stops a copy once ctx is done. It has no ReadFrom, so
// io.Copy uses the source's WriteTo when it has one.
type contextWriter struct {
	ctx context.Context
	w   io.Writer
}

func (c contextWriter) Write(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.w.Write(p)
}

// object is an open object file positioned after its metadata.
type object struct {
	*bufio.Reader
	f       *os.File
	size    int64
	meta    map[string]string
	created time.Time
}

func (o *object) Close() error { return o.f.Close() }

func (b *Bucket) open(name string) (*object, error) {
	p, err := b.path(name)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%s: %w", name, storage.ErrNotExist)
	}
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err != nil || st.IsDir() {
		f.Close()
		return nil, fmt.Errorf("%s: %w", name, storage.ErrNotExist)
	}
	r := bufio.NewReaderSize(f, 64<<10)
	magic := make([]byte, len(fileMagic))
	if _, err := io.ReadFull(r, magic); err != nil || string(magic) != fileMagic {
		f.Close()
		return nil, fmt.Errorf("%s is not an Armory object file", p)
	}
	n, err := binary.ReadUvarint(r)
	if err != nil || n > 1<<20 {
		f.Close()
		return nil, fmt.Errorf("%s has a damaged metadata header", p)
	}
	meta := make([]byte, n)
	if _, err := io.ReadFull(r, meta); err != nil {
		f.Close()
		return nil, fmt.Errorf("%s has a damaged metadata header", p)
	}
	o := &object{Reader: r, f: f}
	if err := json.Unmarshal(meta, &o.meta); err != nil {
		f.Close()
		return nil, fmt.Errorf("%s has damaged metadata: %w", p, err)
	}
	headerLen := int64(len(fileMagic)) + int64(binary.PutUvarint(make([]byte, binary.MaxVarintLen64), n)) + int64(n)
	o.size = st.Size() - headerLen
	o.created = st.ModTime() // written once, then linked into place
	return o, nil
}

// Open reads an object's bytes.
func (b *Bucket) Open(_ context.Context, name string) (io.ReadCloser, error) {
	return b.open(name)
}

// Attributes reads an object's metadata header.
func (b *Bucket) Attributes(_ context.Context, name string) (storage.ObjectAttrs, error) {
	o, err := b.open(name)
	if err != nil {
		return storage.ObjectAttrs{}, err
	}
	defer o.Close()
	return storage.ObjectAttrs{Name: name, Size: o.size, Metadata: o.meta, Created: o.created}, nil
}

// List walks the directories the prefix can match, in name order.
func (b *Bucket) List(ctx context.Context, prefix string, fn func(storage.ObjectAttrs) error) error {
	// Only the directory holding the prefix's last path element can match.
	start := b.root
	if i := strings.LastIndex(prefix, "/"); i >= 0 {
		start = filepath.Join(b.root, filepath.FromSlash(prefix[:i]))
	}
	var names []string
	err := filepath.WalkDir(start, func(p string, d fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		rel, _ := filepath.Rel(b.root, p)
		name := filepath.ToSlash(rel)
		if d.IsDir() {
			if p != start && !strings.HasPrefix(name+"/", prefix) && !strings.HasPrefix(prefix, name+"/") {
				return fs.SkipDir
			}
			return nil
		}
		if strings.HasPrefix(name, prefix) && !strings.HasPrefix(d.Name(), tmpPrefix) {
			names = append(names, name)
		}
		return nil
	})
	if err != nil {
		return err
	}
	sort.Strings(names)
	for _, name := range names {
		attrs, err := b.Attributes(ctx, name)
		if errors.Is(err, storage.ErrNotExist) {
			continue
		}
		if err != nil {
			return err
		}
		if err := fn(attrs); err != nil {
			return err
		}
	}
	return nil
}

// size is the bytes of bufs.
func size(bufs [][]byte) int {
	n := 0
	for _, b := range bufs {
		n += len(b)
	}
	return n
}
