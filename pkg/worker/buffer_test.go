package worker

import (
	"bytes"
	"io"
	"testing"
	"unsafe"

	"github.com/kannika/armory/pkg/storage"
)

// TestSegmentBufferBuffers: the buffers a segment hands a bucket hold what
// was written, in order, and are aligned to 4 KiB in memory, which a
// volume needs to write them unbuffered.
func TestSegmentBufferBuffers(t *testing.T) {
	var want []byte
	b := &segmentBuffer{}
	defer b.Release()
	for i := range 3000 {
		p := bytes.Repeat([]byte{byte(i)}, i%97+1)
		want = append(want, p...)
		if _, err := b.Write(p); err != nil {
			t.Fatal(err)
		}
	}
	r := b.Reader()
	first := make([]byte, 10) // a reader partly read hands over the rest
	if _, err := io.ReadFull(r, first); err != nil {
		t.Fatal(err)
	}
	bufs := r.(storage.Buffers).Buffers()
	if got := append(first, bytes.Join(bufs, nil)...); !bytes.Equal(got, want) {
		t.Fatalf("the buffers hold %d bytes, not the %d written", len(got), len(want))
	}
	for i, c := range bufs[1:] {
		if addr := uintptr(unsafe.Pointer(unsafe.SliceData(c))); addr%4096 != 0 {
			t.Errorf("chunk %d is at %#x, not aligned to 4 KiB", i+1, addr)
		}
	}
	if more := r.(storage.Buffers).Buffers(); len(more) != 0 {
		t.Errorf("a second call handed over %d more buffers", len(more))
	}
	if n, err := r.Read(make([]byte, 1)); n != 0 || err != io.EOF {
		t.Errorf("Read after Buffers = %d, %v; want 0, EOF", n, err)
	}
}
