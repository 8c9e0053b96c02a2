package segment

import (
	"bytes"
	"fmt"
	"io"
	"runtime"
	"sync"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/snappy"
	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
)

// Codec is how a segment's blocks are compressed. Its number is stored in
// the segment header; numbers never change meaning.
type Codec uint8

// Codecs.
const (
	CodecNone   Codec = 0
	CodecZstd   Codec = 1
	CodecGzip   Codec = 2
	CodecSnappy Codec = 3
	CodecLZ4    Codec = 4
)

var codecNames = map[Codec]string{CodecNone: "none", CodecZstd: "zstd", CodecGzip: "gzip", CodecSnappy: "snappy", CodecLZ4: "lz4"}

func (c Codec) String() string {
	if n, ok := codecNames[c]; ok {
		return n
	}
	return fmt.Sprintf("codec(%d)", uint8(c))
}

// ParseCodec returns the codec of a Backup's compression.algorithm.
func ParseCodec(name string) (Codec, error) {
	for c, n := range codecNames {
		if n == name {
			return c, nil
		}
	}
	return 0, fmt.Errorf("unknown compression %q: use none, zstd, gzip, snappy or lz4", name)
}

// Level is how hard a codec works: speed traded against size. It is not
// stored: a block decodes the same whatever level compressed it. zstd,
// gzip and lz4 have levels; none and snappy only LevelDefault.
type Level uint8

// Levels.
const (
	LevelDefault Level = iota
	LevelFastest
	LevelBetter
	levelCount = 3
)

var levelNames = map[Level]string{LevelDefault: "default", LevelFastest: "fastest", LevelBetter: "better"}

func (l Level) String() string {
	if n, ok := levelNames[l]; ok {
		return n
	}
	return fmt.Sprintf("level(%d)", uint8(l))
}

// ParseLevel returns the level of a Backup's compression.level for codec
// c; "" is the default.
func ParseLevel(c Codec, name string) (Level, error) {
	if name == "" {
		return LevelDefault, nil
	}
	for l, n := range levelNames {
		if n != name {
			continue
		}
		if l != LevelDefault && (c == CodecNone || c == CodecSnappy) {
			return 0, fmt.Errorf("%s has no level %q: leave level out, or use zstd, gzip or lz4", c, name)
		}
		return l, nil
	}
	return 0, fmt.Errorf("unknown level %q: use fastest, default or better", name)
}

// The zstd encoders and the decoder are safe for concurrent
// EncodeAll/DecodeAll and costly to create: one per level, made when first
// used, and one decoder. An encoder compresses as many blocks at once as
// there are cores (one state each), so partitions compress in parallel.
// Default is SpeedDefault: on JSON-like records SpeedFastest is about a
// third faster for a backup about 12% larger, SpeedBetterCompression about
// 2.4 times slower for one about 9% smaller (the codec benchmark).
var (
	zstdEncoders = [...]func() *zstd.Encoder{
		LevelDefault: sync.OnceValue(func() *zstd.Encoder { return newZstdEncoder(zstd.SpeedDefault) }),
		LevelFastest: sync.OnceValue(func() *zstd.Encoder { return newZstdEncoder(zstd.SpeedFastest) }),
		LevelBetter:  sync.OnceValue(func() *zstd.Encoder { return newZstdEncoder(zstd.SpeedBetterCompression) }),
	}
	zstdDecoder, _ = zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(maxBlockBytes))
)

func newZstdEncoder(level zstd.EncoderLevel) *zstd.Encoder {
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderConcurrency(runtime.GOMAXPROCS(0)), zstd.WithEncoderLevel(level),
		// Each block is compressed on its own: a window past the block
		// size compresses nothing better and costs 16 MiB per encoder.
		zstd.WithWindowSize(DefaultBlockSize))
	if err != nil {
		panic(err) // only for options out of range, which these are not
	}
	return enc
}

// gzip and lz4 levels: fastest is each library's fastest, better its
// strongest before the steep end (gzip 9 is its best; lz4's high
// compression mode at level 5 already runs at a small share of its fast
// mode, which is also lz4's default).
var (
	gzipLevels = [...]int{LevelDefault: gzip.DefaultCompression, LevelFastest: gzip.BestSpeed, LevelBetter: gzip.BestCompression}
	lz4Levels  = [...]lz4.CompressionLevel{LevelDefault: lz4.Fast, LevelFastest: lz4.Fast, LevelBetter: lz4.Level5}
)

// compress appends src, compressed at level, to dst.
func (c Codec) compress(dst, src []byte, level Level) ([]byte, error) {
	if level >= levelCount {
		return nil, fmt.Errorf("unknown level %d", level)
	}
	switch c {
	case CodecNone:
		return append(dst, src...), nil
	case CodecZstd:
		return zstdEncoders[level]().EncodeAll(src, dst), nil
	case CodecSnappy:
		return append(dst, snappy.Encode(nil, src)...), nil
	case CodecGzip:
		buf := bytes.NewBuffer(dst)
		w := gzipWriters[level].Get().(*gzip.Writer)
		defer gzipWriters[level].Put(w)
		w.Reset(buf)
		return finish(buf, w, src)
	case CodecLZ4:
		buf := bytes.NewBuffer(dst)
		w := lz4Writers[level].Get().(*lz4.Writer)
		defer lz4Writers[level].Put(w)
		w.Reset(buf)
		return finish(buf, w, src)
	}
	return nil, fmt.Errorf("unknown codec %d", c)
}

// gzip and lz4 frame writers hold large buffers: reuse them across blocks,
// one pool per level (Reset keeps a writer's level).
var gzipWriters, lz4Writers [levelCount]sync.Pool

func init() {
	for l := range gzipWriters {
		gzipWriters[l].New = func() any {
			w, _ := gzip.NewWriterLevel(nil, gzipLevels[l]) // the levels above are valid
			return w
		}
		lz4Writers[l].New = func() any {
			w := lz4.NewWriter(nil)
			if err := w.Apply(lz4.CompressionLevelOption(lz4Levels[l])); err != nil {
				panic(err)
			}
			return w
		}
	}
}

func finish(buf *bytes.Buffer, w io.WriteCloser, src []byte) ([]byte, error) {
	if _, err := w.Write(src); err != nil {
		return nil, err
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// decompress returns src decompressed into dst[:0], which must come out
// exactly size bytes long.
func (c Codec) decompress(dst, src []byte, size int) ([]byte, error) {
	var out []byte
	var err error
	switch c {
	case CodecNone:
		out = append(dst[:0], src...)
	case CodecZstd:
		out, err = zstdDecoder.DecodeAll(src, dst[:0])
	case CodecSnappy:
		var n int
		if n, err = snappy.DecodedLen(src); err == nil && n != size {
			return nil, fmt.Errorf("snappy block decodes to %d bytes, header says %d", n, size)
		}
		if err == nil {
			out, err = snappy.Decode(grow(dst, size), src)
		}
	case CodecGzip, CodecLZ4:
		var r io.Reader
		if c == CodecGzip {
			if r, err = gzip.NewReader(bytes.NewReader(src)); err != nil {
				return nil, err
			}
		} else {
			r = lz4.NewReader(bytes.NewReader(src))
		}
		// Read one byte past size to catch a block longer than its header says.
		buf := bytes.NewBuffer(dst[:0])
		_, err = io.Copy(buf, io.LimitReader(r, int64(size)+1))
		out = buf.Bytes()
	default:
		return nil, fmt.Errorf("unknown codec %d", c)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", c, err)
	}
	if len(out) != size {
		return nil, fmt.Errorf("%s block decompresses to %d bytes, header says %d", c, len(out), size)
	}
	return out, nil
}

func grow(b []byte, n int) []byte {
	if cap(b) >= n {
		return b[:n]
	}
	return make([]byte, n)
}
