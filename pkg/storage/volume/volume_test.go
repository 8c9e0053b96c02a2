package volume

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kannika/armory/pkg/storage"
	"github.com/kannika/armory/pkg/storage/storagetest"
)

func TestAcceptance(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) (storage.Bucket, storage.Bucket) {
		dir := t.TempDir()
		a, err := New(dir)
		if err != nil {
			t.Fatal(err)
		}
		b, err := New(dir)
		if err != nil {
			t.Fatal(err)
		}
		return a, b
	})
}

// TestRemoveTemp removes what a killed Create leaves, and nothing else.
func TestRemoveTemp(t *testing.T) {
	dir := t.TempDir()
	b, err := New(dir)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := b.Create(ctx, "t/0/00000000000000000000.seg", strings.NewReader("kept"), nil); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{".tmp-1", ".tmp-2"} {
		if err := os.WriteFile(filepath.Join(dir, "t", "0", name), []byte("partial"), 0o640); err != nil {
			t.Fatal(err)
		}
	}
	n, err := b.RemoveTemp(ctx, "t/0/")
	if err != nil || n != 2 {
		t.Fatalf("RemoveTemp = %d, %v; want 2", n, err)
	}
	entries, _ := os.ReadDir(filepath.Join(dir, "t", "0"))
	if len(entries) != 1 || entries[0].Name() != "00000000000000000000.seg" {
		t.Errorf("left: %v", entries)
	}
	if n, err := b.RemoveTemp(ctx, "t/9/"); err != nil || n != 0 {
		t.Errorf("a folder that does not exist: %d, %v", n, err)
	}
	if _, err := b.RemoveTemp(ctx, "../"); err == nil {
		t.Error("RemoveTemp outside the bucket was accepted")
	}
}
