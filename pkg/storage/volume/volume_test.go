package volume

import (
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
