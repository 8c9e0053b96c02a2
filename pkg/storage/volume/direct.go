package volume

import (
	"context"
	"encoding/binary"
	"os"
)

// Unbuffered writes (O_DIRECT on Linux). A segment is written once, fsynced
// and not read back by the worker that wrote it: copying it into the page
// cache first costs the worker's CPU (about 0.6 s per GiB on the
// benchmark's machine, as much as decoding it from Kafka) and, in a pod,
// charges the node's page cache to the worker's memory cgroup. Unbuffered,
// the device reads the segment's chunks where they are.
const (
	// directAlign is what unbuffered I/O asks of a write's memory, file
	// offset and length on common block devices (512 or 4096 bytes).
	directAlign = 4096
	// directMin: smaller objects go through the page cache, where their
	// header's padding and the device's latency per write would cost more
	// than the copy.
	directMin = 1 << 20
	// vectorMax bounds the buffers and bytes of one vectored write (the
	// kernel takes at most 1024 buffers).
	vectorMax      = 128
	vectorMaxBytes = 4 << 20
)

// fileHeader is the object file's header: the magic, the metadata's length,
// the metadata. When aligned, the metadata JSON ends in spaces (the same
// JSON) so that the header fills whole 4 KiB blocks and the object's bytes
// start where an unbuffered write may.
func fileHeader(meta []byte, aligned bool) []byte {
	n := len(meta)
	if aligned {
		// The length's uvarint is part of the header: find the padded
		// length whose uvarint has the size that length assumed.
		for size := 1; size <= binary.MaxVarintLen64; size++ {
			total := (len(fileMagic) + size + len(meta) + directAlign - 1) / directAlign * directAlign
			if n = total - len(fileMagic) - size; uvarintLen(n) == size {
				break
			}
		}
	}
	h := binary.AppendUvarint([]byte(fileMagic), uint64(n))
	h = append(h, meta...)
	for range n - len(meta) {
		h = append(h, ' ')
	}
	return h
}

func uvarintLen(n int) int {
	return len(binary.AppendUvarint(nil, uint64(n)))
}

// writeBuffers writes bufs to f at off in vectored writes. With direct,
// the whole 4 KiB blocks from off on go unbuffered, and what follows them
// (the last buffer's tail) through the page cache. Where the filesystem or
// the device refuses unbuffered writes (no O_DIRECT, or an alignment it
// asks for that 4 KiB does not meet), everything left goes through the
// page cache: a refusal writes nothing, so nothing is lost or written twice.
// It returns the bytes written unbuffered.
func writeBuffers(ctx context.Context, f *os.File, off int64, bufs [][]byte, direct bool) (unbuffered int64, err error) {
	direct = direct && off%directAlign == 0 && setDirect(f, true) == nil
	for len(bufs) > 0 {
		if err := ctx.Err(); err != nil {
			return unbuffered, err
		}
		n := vectorLen(bufs, direct)
		if n == 0 {
			// The next buffer is not whole blocks: the rest is buffered.
			if err := setDirect(f, false); err != nil {
				return unbuffered, err
			}
			direct = false
			continue
		}
		written, err := pwritev(f, bufs[:n], off)
		if direct && written == 0 && refused(err) {
			if err := setDirect(f, false); err != nil {
				return unbuffered, err
			}
			direct = false
			continue
		}
		if err != nil {
			return unbuffered, err
		}
		if direct {
			unbuffered += int64(written)
		}
		off += int64(written)
		bufs = advance(bufs, written)
		// A short write leaves off anywhere: the next unbuffered write is
		// then refused, and the rest is buffered.
	}
	return unbuffered, nil
}

// vectorLen is how many of bufs the next vectored write takes: at most
// vectorMax buffers and vectorMaxBytes (always the first), and, when
// direct, only buffers of whole blocks (none if the first is not).
func vectorLen(bufs [][]byte, direct bool) int {
	bytes := 0
	for i, b := range bufs {
		if i == vectorMax || (i > 0 && bytes+len(b) > vectorMaxBytes) || (direct && len(b)%directAlign != 0) {
			return i
		}
		bytes += len(b)
	}
	return len(bufs)
}

// advance drops the first n bytes of bufs.
func advance(bufs [][]byte, n int) [][]byte {
	for n > 0 && len(bufs) > 0 {
		if n < len(bufs[0]) {
			bufs[0] = bufs[0][n:]
			return bufs
		}
		n -= len(bufs[0])
		bufs = bufs[1:]
	}
	for len(bufs) > 0 && len(bufs[0]) == 0 {
		bufs = bufs[1:]
	}
	return bufs
}
