package worker

import (
	"io"
	"sync"
)

// chunkSize is the unit a segmentBuffer grows by: small, so that a quiet
// partition's open segment holds little more than its bytes.
const chunkSize = 32 << 10

// chunks are reused segment after segment: a growing segment is never
// copied, and its memory is neither cleared nor collected again. Go's
// allocator places a 32 KiB array at the start of its own 8 KiB-aligned
// span, so a volume writes the chunks unbuffered (storage.Buffers).
var chunks = sync.Pool{New: func() any { return new([chunkSize]byte) }}

// segmentBuffer holds an encoded segment in fixed-size chunks. It is the
// io.Writer a segment.Writer writes to, and the source of the upload.
type segmentBuffer struct {
	chunks []*[chunkSize]byte
	n      int // bytes written
}

func (b *segmentBuffer) Write(p []byte) (int, error) {
	written := len(p)
	for len(p) > 0 {
		at := b.n % chunkSize
		if at == 0 && b.n/chunkSize == len(b.chunks) {
			b.chunks = append(b.chunks, chunks.Get().(*[chunkSize]byte))
		}
		c := copy(b.chunks[b.n/chunkSize][at:], p)
		p = p[c:]
		b.n += c
	}
	return written, nil
}

// Len is the bytes written.
func (b *segmentBuffer) Len() int { return b.n }

// Held is the memory the buffer holds.
func (b *segmentBuffer) Held() int { return len(b.chunks) * chunkSize }

// Reader reads what was written; it must not be used after Release.
func (b *segmentBuffer) Reader() io.Reader { return &chunkReader{b: b} }

// Release returns the chunks for other segments to use.
func (b *segmentBuffer) Release() {
	for _, c := range b.chunks {
		chunks.Put(c)
	}
	b.chunks, b.n = nil, 0
}

// chunkReader reads a segmentBuffer. It is storage.Buffers: reading it
// cannot fail midway, and a bucket may write its chunks as they are.
type chunkReader struct {
	b   *segmentBuffer
	off int
}

func (r *chunkReader) InMemory() {}

func (r *chunkReader) Read(p []byte) (int, error) {
	if r.off >= r.b.n {
		return 0, io.EOF
	}
	n := copy(p, r.chunk())
	r.off += n
	return n, nil
}

// WriteTo writes the chunks to w as they are (io.Copy uses it): no copy
// through an intermediate buffer.
func (r *chunkReader) WriteTo(w io.Writer) (int64, error) {
	var total int64
	for r.off < r.b.n {
		n, err := w.Write(r.chunk())
		r.off += n
		total += int64(n)
		if err != nil {
			return total, err
		}
	}
	return total, nil
}

// Buffers returns the unread parts of the chunks and counts them read.
func (r *chunkReader) Buffers() [][]byte {
	var bufs [][]byte
	for r.off < r.b.n {
		c := r.chunk()
		bufs = append(bufs, c)
		r.off += len(c)
	}
	return bufs
}

// chunk is the unread part of the chunk at r.off.
func (r *chunkReader) chunk() []byte {
	c := r.b.chunks[r.off/chunkSize]
	return c[r.off%chunkSize : min(chunkSize, r.b.n-r.off/chunkSize*chunkSize)]
}
