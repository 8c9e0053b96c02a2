package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/kannika/armory/pkg/layout"
	"github.com/kannika/armory/pkg/segment"
	"github.com/kannika/armory/pkg/storage/volume"
)

// volumeAloneName names the row of the volume storing segments by itself.
const volumeAloneName = "the volume alone: 3 partitions' 16 MiB segments stored at once from memory, as a backup stores them (no Kafka)"

// runVolumeAlone stores n bytes as 16 MiB segments into a new volume under
// dir, writers at once, through the volume's own Create as a backup's
// partitions do (unbuffered vectored writes, fsync, link, the folder's
// fsync), from memory held in 32 KiB chunks like a segment's: the speed a
// volume backup's storage has on this disk with nothing else to do. dd's
// buffered writes with one fsync at the end do not tell it: a backup
// writes unbuffered and fsyncs every segment.
func runVolumeAlone(ctx context.Context, dir string, n int64, writers int) (result, error) {
	fmt.Println("the volume alone...")
	const segmentBytes = 16 << 20
	root := filepath.Join(dir, "volume-alone")
	defer os.RemoveAll(root)
	vol, err := volume.New(root)
	if err != nil {
		return result{}, err
	}
	// The same pseudo-random bytes in every segment: nothing for a disk
	// to compress or skip, and no memory but one segment's.
	chunks := make([]*[32 << 10]byte, segmentBytes/(32<<10))
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range chunks {
		chunks[i] = new([32 << 10]byte)
		for j := 0; j < len(chunks[i]); j += 8 {
			v := rng.Uint64()
			for k := range 8 {
				chunks[i][j+k] = byte(v >> (8 * k))
			}
		}
	}
	// Each writer's share in whole chunks, the last segment shorter.
	perWriter := int((n/int64(writers) + 32<<10 - 1) / (32 << 10))
	start, steal := time.Now(), stealMeter()
	var wg sync.WaitGroup
	errs := make([]error, writers)
	for w := range writers {
		wg.Go(func() {
			for at := 0; at < perWriter; at += len(chunks) {
				src := &chunkSource{chunks: chunks[:min(len(chunks), perWriter-at)]}
				sum := segment.Summary{Partition: int32(w), Codec: segment.CodecNone, Start: int64(at), End: int64(at + len(src.chunks)),
					Records: int64(len(src.chunks)), Bytes: int64(len(src.chunks)) << 15}
				if err := vol.Create(ctx, layout.SegmentName("alone", int32(w), sum.Start), src, layout.SegmentMetadata(sum)); err != nil {
					errs[w] = err
					return
				}
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return result{}, fmt.Errorf("the volume alone: %w", err)
	}
	bytes := int64(writers) * int64(perWriter) << 15
	return result{name: volumeAloneName, seconds: time.Since(start).Seconds(), bytes: bytes, compressedMiB: float64(bytes) / (1 << 20),
		segments: writers * ((perWriter + len(chunks) - 1) / len(chunks)), stealPct: steal()}, nil
}

// chunkSource is a segment's bytes held in chunks, read once: a
// storage.Buffers, as a backup's segments are.
type chunkSource struct {
	chunks []*[32 << 10]byte
	off    int // bytes read
}

func (c *chunkSource) InMemory() {}

func (c *chunkSource) Read(p []byte) (int, error) {
	i := c.off / (32 << 10)
	if i == len(c.chunks) {
		return 0, io.EOF
	}
	n := copy(p, c.chunks[i][c.off%(32<<10):])
	c.off += n
	return n, nil
}

func (c *chunkSource) Buffers() [][]byte {
	var bufs [][]byte
	for i := c.off / (32 << 10); i < len(c.chunks); i++ {
		bufs = append(bufs, c.chunks[i][c.off%(32<<10):])
		c.off = (i + 1) * (32 << 10)
	}
	return bufs
}
