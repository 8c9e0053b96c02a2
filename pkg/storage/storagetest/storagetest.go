// Package storagetest is the acceptance test every storage.Bucket passes.
package storagetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kannika/armory/pkg/storage"
)

// Run holds a Bucket to the contract the backup relies on. newBucket returns
// an empty bucket; two calls for one test must see the same objects (a second
// writer, like a second worker).
func Run(t *testing.T, newBucket func(t *testing.T) (first, second storage.Bucket)) {
	ctx := context.Background()

	t.Run("create then read back bytes and metadata", func(t *testing.T) {
		b, _ := newBucket(t)
		data := bytes.Repeat([]byte{0, 1, 2, 3, 254, 255}, 1_000_000) // 6 MB: more than one upload chunk
		meta := map[string]string{"end": "1234", "records": "17"}
		if err := b.Create(ctx, "t/0/00000000000000000000.seg", bytes.NewReader(data), meta); err != nil {
			t.Fatal(err)
		}
		got := read(t, b, "t/0/00000000000000000000.seg")
		if !bytes.Equal(got, data) {
			t.Errorf("read %d bytes back, wrote %d (or they differ)", len(got), len(data))
		}
		attrs, err := b.Attributes(ctx, "t/0/00000000000000000000.seg")
		if err != nil {
			t.Fatal(err)
		}
		if attrs.Size != int64(len(data)) || attrs.Metadata["end"] != "1234" || attrs.Metadata["records"] != "17" || attrs.Name != "t/0/00000000000000000000.seg" {
			t.Errorf("attributes = %+v", attrs)
		}
		if age := time.Since(attrs.Created); attrs.Created.IsZero() || age > time.Minute || age < -time.Minute {
			t.Errorf("created = %v, want about now", attrs.Created)
		}
		var listed storage.ObjectAttrs
		_ = b.List(ctx, "t/0/", func(a storage.ObjectAttrs) error { listed = a; return nil })
		if !listed.Created.Equal(attrs.Created) {
			t.Errorf("List says created %v, Attributes %v", listed.Created, attrs.Created)
		}
	})

	t.Run("empty object", func(t *testing.T) {
		b, _ := newBucket(t)
		if err := b.Create(ctx, "t/topic.json", bytes.NewReader(nil), nil); err != nil {
			t.Fatal(err)
		}
		if got := read(t, b, "t/topic.json"); len(got) != 0 {
			t.Errorf("read %d bytes from an empty object", len(got))
		}
	})

	t.Run("create refuses an existing name and keeps the first object", func(t *testing.T) {
		b, other := newBucket(t)
		if err := b.Create(ctx, "t/0/a.seg", strings.NewReader("first"), map[string]string{"w": "1"}); err != nil {
			t.Fatal(err)
		}
		err := other.Create(ctx, "t/0/a.seg", strings.NewReader("second, longer"), map[string]string{"w": "2"})
		if !errors.Is(err, storage.ErrExists) {
			t.Fatalf("second create: err = %v, want ErrExists", err)
		}
		if got := string(read(t, b, "t/0/a.seg")); got != "first" {
			t.Errorf("object = %q after a refused create, want %q", got, "first")
		}
		if attrs, _ := b.Attributes(ctx, "t/0/a.seg"); attrs.Metadata["w"] != "1" {
			t.Errorf("metadata = %v after a refused create", attrs.Metadata)
		}
	})

	t.Run("concurrent creates of one name: exactly one wins", func(t *testing.T) {
		b, other := newBucket(t)
		var wins, exists atomic.Int32
		var wg sync.WaitGroup
		for i := range 8 {
			wg.Go(func() {
				target := b
				if i%2 == 1 {
					target = other
				}
				err := target.Create(ctx, "t/1/race.seg", strings.NewReader(fmt.Sprintf("writer %d", i)), nil)
				switch {
				case err == nil:
					wins.Add(1)
				case errors.Is(err, storage.ErrExists):
					exists.Add(1)
				default:
					t.Errorf("writer %d: %v", i, err)
				}
			})
		}
		wg.Wait()
		if wins.Load() != 1 || exists.Load() != 7 {
			t.Errorf("%d writers won and %d were refused, want 1 and 7", wins.Load(), exists.Load())
		}
		if got := string(read(t, b, "t/1/race.seg")); !strings.HasPrefix(got, "writer ") {
			t.Errorf("object = %q", got)
		}
	})

	t.Run("a failed or cancelled create leaves no object, and the name stays free", func(t *testing.T) {
		b, _ := newBucket(t)
		failing := io.MultiReader(strings.NewReader("half of a segment"), errReader{errors.New("the source broke")})
		if err := b.Create(ctx, "t/2/00000000000000000000.seg", failing, nil); err == nil {
			t.Error("Create from a failing reader returned nil")
		}
		cancelled, cancel := context.WithCancel(ctx)
		cancel()
		if err := b.Create(cancelled, "t/2/00000000000000000100.seg", strings.NewReader("x"), nil); err == nil {
			t.Error("Create with a cancelled context returned nil")
		}
		var left []string
		_ = b.List(ctx, "t/2/", func(a storage.ObjectAttrs) error { left = append(left, a.Name); return nil })
		if len(left) != 0 {
			t.Errorf("objects left by failed creates: %v", left)
		}
		if err := b.Create(ctx, "t/2/00000000000000000000.seg", strings.NewReader("whole"), nil); err != nil {
			t.Errorf("the name of a failed create is not free: %v", err)
		}
		if got := string(read(t, b, "t/2/00000000000000000000.seg")); got != "whole" {
			t.Errorf("object = %q", got)
		}
	})

	t.Run("not found", func(t *testing.T) {
		b, _ := newBucket(t)
		if _, err := b.Open(ctx, "t/0/missing.seg"); !errors.Is(err, storage.ErrNotExist) {
			t.Errorf("Open: err = %v, want ErrNotExist", err)
		}
		if _, err := b.Attributes(ctx, "t/0/missing.seg"); !errors.Is(err, storage.ErrNotExist) {
			t.Errorf("Attributes: err = %v, want ErrNotExist", err)
		}
	})

	t.Run("list by prefix in name order with metadata", func(t *testing.T) {
		b, _ := newBucket(t)
		names := []string{"t/1/00000000000000000100.seg", "t/1/00000000000000000000.seg", "t/10/00000000000000000000.seg",
			"t/topic.json", "t/0/00000000000000000000.seg", "u/1/00000000000000000000.seg", "t/1/00000000000000000050.gap"}
		for i, n := range names {
			if err := b.Create(ctx, n, strings.NewReader(n), map[string]string{"i": fmt.Sprint(i)}); err != nil {
				t.Fatal(err)
			}
		}
		var got []string
		err := b.List(ctx, "t/1/", func(a storage.ObjectAttrs) error {
			got = append(got, a.Name+"#"+a.Metadata["i"]+"#"+fmt.Sprint(a.Size))
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		want := []string{"t/1/00000000000000000000.seg#1#28", "t/1/00000000000000000050.gap#6#28", "t/1/00000000000000000100.seg#0#28"}
		if strings.Join(got, " ") != strings.Join(want, " ") {
			t.Errorf("List(t/1/) = %v\nwant          %v", got, want)
		}
		var all []string
		_ = b.List(ctx, "t/", func(a storage.ObjectAttrs) error { all = append(all, a.Name); return nil })
		if len(all) != 6 || all[0] != "t/0/00000000000000000000.seg" || all[5] != "t/topic.json" {
			t.Errorf("List(t/) = %v", all)
		}
		var none int
		_ = b.List(ctx, "nothing/", func(storage.ObjectAttrs) error { none++; return nil })
		if none != 0 {
			t.Errorf("List(nothing/) found %d objects", none)
		}
		stop := errors.New("stop")
		if err := b.List(ctx, "t/", func(storage.ObjectAttrs) error { return stop }); !errors.Is(err, stop) {
			t.Errorf("List did not return the callback's error: %v", err)
		}
	})
}

func read(t *testing.T, b storage.Bucket, name string) []byte {
	t.Helper()
	r, err := b.Open(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	data, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }
