package volume

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestFileHeaderAligned: a padded header fills whole 4 KiB blocks and reads
// back as the same metadata; an unpadded one is the metadata exactly.
func TestFileHeaderAligned(t *testing.T) {
	for _, n := range []int{0, 1, 100, 4086, 4087, 4088, 4095, 8000, 16373, 16374, 16375, 40000} {
		meta, _ := json.Marshal(map[string]string{"k": strings.Repeat("v", n)})
		for _, aligned := range []bool{false, true} {
			h := fileHeader(meta, aligned)
			if aligned && len(h)%directAlign != 0 {
				t.Errorf("meta of %d bytes: padded header is %d bytes, not whole 4 KiB blocks", len(meta), len(h))
			}
			r := bytes.NewReader(h[len(fileMagic):])
			size, err := binary.ReadUvarint(r)
			if err != nil || int(size) != r.Len() {
				t.Fatalf("meta of %d bytes, aligned %v: length %d, %v; %d bytes follow", len(meta), aligned, size, err, r.Len())
			}
			if !aligned && int(size) != len(meta) {
				t.Errorf("unpadded header holds %d bytes of metadata, want %d", size, len(meta))
			}
			var got map[string]string
			if err := json.Unmarshal(h[len(h)-int(size):], &got); err != nil || len(got["k"]) != n {
				t.Errorf("meta of %d bytes, aligned %v: read back %d bytes, %v", len(meta), aligned, len(got["k"]), err)
			}
		}
	}
}

// buffers is a storage.Buffers source.
type buffers struct {
	bufs [][]byte
	read bool
}

func (b *buffers) InMemory() {}
func (b *buffers) Read([]byte) (int, error) {
	panic("Create read a Buffers source through Read")
}
func (b *buffers) Buffers() [][]byte {
	if b.read {
		return nil
	}
	b.read = true
	return b.bufs
}

// split cuts data into pieces of the given sizes (the last takes the rest).
func split(data []byte, sizes ...int) [][]byte {
	var out [][]byte
	for _, s := range sizes {
		out, data = append(out, data[:s]), data[s:]
	}
	return append(out, data)
}

// alignedChunks copies data into 32 KiB arrays, as a worker's segment
// buffer holds it.
func alignedChunks(data []byte) [][]byte {
	var out [][]byte
	for len(data) > 0 {
		c := new([32 << 10]byte)
		n := copy(c[:], data)
		out, data = append(out, c[:n]), data[n:]
	}
	return out
}

// TestCreateFromBuffers stores sources held in buffers, aligned or not, of
// any size, and reads back exactly what they held.
func TestCreateFromBuffers(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	data := make([]byte, 3<<20+1234)
	for i := range data {
		data[i] = byte(rng.Uint32())
	}
	offByOne := make([]byte, len(data)+1)
	copy(offByOne[1:], data)
	cases := map[string][][]byte{
		"aligned chunks, a short last one": alignedChunks(data),
		"whole blocks, memory off by one":  split(offByOne[1:], 32<<10, 32<<10, 1<<20),
		"a short buffer in the middle":     split(data, 64<<10, 100, 1<<20),
		"one buffer":                       {data},
		"small":                            alignedChunks(data[:5000]),
		"empty buffers":                    {{}, data[:10], {}},
	}
	b, err := New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	i := 0
	for name, bufs := range cases {
		want := bytes.Join(bufs, nil)
		object := filepath.ToSlash(filepath.Join("t", "0", strings.Repeat("0", 19)+string(rune('a'+i))))
		i++
		meta := map[string]string{"case": name}
		if err := b.Create(ctx, object, &buffers{bufs: bufs}, meta); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		attrs, err := b.Attributes(ctx, object)
		if err != nil || attrs.Size != int64(len(want)) || attrs.Metadata["case"] != name {
			t.Errorf("%s: attributes %+v, %v; want %d bytes", name, attrs, err, len(want))
		}
		r, err := b.Open(ctx, object)
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(r)
		r.Close()
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s: read back %d bytes (%v), want the %d written", name, len(got), err, len(want))
		}
	}
}

// TestWriteBuffersUnbuffered: where the filesystem has unbuffered writes,
// the whole 4 KiB blocks of aligned chunks go unbuffered and the rest
// through the page cache; misaligned memory is written all buffered.
func TestWriteBuffersUnbuffered(t *testing.T) {
	dir := t.TempDir()
	probe, err := os.Create(filepath.Join(dir, "probe"))
	if err != nil {
		t.Fatal(err)
	}
	supported := setDirect(probe, true) == nil
	probe.Close()

	data := make([]byte, 2<<20+777)
	for i := range data {
		data[i] = byte(i * 7)
	}
	offByOne := make([]byte, len(data)+1)
	copy(offByOne[1:], data)
	for _, c := range []struct {
		name       string
		bufs       [][]byte
		unbuffered int64
	}{
		{"aligned chunks", alignedChunks(data), 2 << 20},
		{"memory off by one", split(offByOne[1:], 1<<20), 0},
	} {
		f, err := os.Create(filepath.Join(dir, c.name))
		if err != nil {
			t.Fatal(err)
		}
		header := make([]byte, directAlign)
		if _, err := f.Write(header); err != nil {
			t.Fatal(err)
		}
		n, err := writeBuffers(context.Background(), f, directAlign, c.bufs, true)
		f.Close()
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if want := c.unbuffered; supported && n != want {
			t.Errorf("%s: %d bytes unbuffered, want %d", c.name, n, want)
		}
		if !supported && n != 0 {
			t.Errorf("%s: %d bytes unbuffered on a filesystem without unbuffered writes", c.name, n)
		}
		got, _ := os.ReadFile(filepath.Join(dir, c.name))
		if !bytes.Equal(got[directAlign:], data) {
			t.Errorf("%s: the file does not hold what was written", c.name)
		}
	}
	if !supported {
		t.Logf("%s has no unbuffered writes: checked only that everything was written buffered", dir)
	}
}

// TestWriteBuffersStopsWithContext: a cancelled upload writes nothing more.
func TestWriteBuffersStopsWithContext(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "f"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := writeBuffers(ctx, f, 0, [][]byte{make([]byte, 8192)}, true); err != context.Canceled {
		t.Errorf("err = %v, want context.Canceled", err)
	}
	if st, _ := f.Stat(); st.Size() != 0 {
		t.Errorf("wrote %d bytes after the context was cancelled", st.Size())
	}
}

func TestVectorLenAndAdvance(t *testing.T) {
	block := make([]byte, directAlign)
	many := make([][]byte, vectorMax+5)
	for i := range many {
		many[i] = block
	}
	for _, c := range []struct {
		name   string
		bufs   [][]byte
		direct bool
		want   int
	}{
		{"at most vectorMax buffers", many, true, vectorMax},
		{"direct stops before a buffer of part of a block", [][]byte{block, block[:10], block}, true, 1},
		{"direct takes none when the first is part of a block", [][]byte{block[:10], block}, true, 0},
		{"buffered takes any length", [][]byte{block, block[:10], block}, false, 3},
		{"at most vectorMaxBytes, but always one", [][]byte{make([]byte, vectorMaxBytes+1), block}, false, 1},
	} {
		if got := vectorLen(c.bufs, c.direct); got != c.want {
			t.Errorf("%s: vectorLen = %d, want %d", c.name, got, c.want)
		}
	}
	bufs := advance([][]byte{[]byte("abc"), {}, []byte("de"), []byte("f")}, 4)
	if got := string(bytes.Join(bufs, nil)); got != "ef" || len(bufs[0]) == 0 {
		t.Errorf("advance by 4 left %q in %d buffers", got, len(bufs))
	}
	if bufs := advance([][]byte{[]byte("ab"), {}}, 2); len(bufs) != 0 {
		t.Errorf("advance past the end left %d buffers", len(bufs))
	}
}
