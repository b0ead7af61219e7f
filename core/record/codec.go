package record

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
)

// Codec is a compression codec, as stored in attributes bits 0-2.
type Codec int8

// The codecs Kafka defines.
const (
	CodecNone   Codec = 0
	CodecGzip   Codec = 1
	CodecSnappy Codec = 2
	CodecLZ4    Codec = 3
	CodecZstd   Codec = 4
)

var codecNames = [...]string{"none", "gzip", "snappy", "lz4", "zstd"}

// String returns the codec's name as ParseCodec accepts it, or "codec(N)"
// for an unknown one.
func (c Codec) String() string {
	if c.known() {
		return codecNames[c]
	}
	return fmt.Sprintf("codec(%d)", int8(c))
}

func (c Codec) known() bool { return c >= CodecNone && c <= CodecZstd }

// ParseCodec returns the codec named "none", "gzip", "snappy", "lz4" or
// "zstd" (case-insensitive), or an error wrapping ErrCodec.
func ParseCodec(s string) (Codec, error) {
	for i, n := range codecNames {
		if strings.EqualFold(s, n) {
			return Codec(i), nil
		}
	}
	return 0, fmt.Errorf("%w: %q", ErrCodec, s)
}

// ---- compression ----

var (
	gzipWriters = sync.Pool{New: func() any {
		w, _ := gzip.NewWriterLevel(nil, gzip.DefaultCompression)
		return w
	}}
	lz4Writers = sync.Pool{New: func() any {
		w := lz4.NewWriter(nil)
		// 64 KiB blocks, as Kafka's Java producer writes; readers then
		// need small buffers.
		_ = w.Apply(lz4.BlockSizeOption(lz4.Block64Kb))
		return w
	}}
	zstdEncoder = sync.OnceValue(func() *zstd.Encoder {
		// EncodeAll is safe for concurrent use.
		e, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedDefault))
		if err != nil {
			panic(err) // only on invalid options
		}
		return e
	})
)

// appendWriter is an io.Writer appending to a byte slice.
type appendWriter struct{ b []byte }

func (w *appendWriter) Write(p []byte) (int, error) {
	w.b = append(w.b, p...)
	return len(p), nil
}

// compress appends src compressed with c to dst.
func compress(c Codec, dst, src []byte) ([]byte, error) {
	switch c {
	case CodecNone:
		return append(dst, src...), nil
	case CodecGzip:
		w := gzipWriters.Get().(*gzip.Writer)
		defer gzipWriters.Put(w)
		aw := &appendWriter{dst}
		w.Reset(aw)
		if _, err := w.Write(src); err != nil {
			return nil, err
		}
		if err := w.Close(); err != nil {
			return nil, err
		}
		return aw.b, nil
	case CodecSnappy:
		// A raw snappy block, as librdkafka and franz-go write it.
		n := len(dst)
		dst = grow(dst, s2.MaxEncodedLen(len(src)))
		enc := s2.EncodeSnappy(dst[n:cap(dst)], src)
		return dst[:n+len(enc)], nil
	case CodecLZ4:
		w := lz4Writers.Get().(*lz4.Writer)
		defer lz4Writers.Put(w)
		aw := &appendWriter{dst}
		w.Reset(aw)
		if _, err := w.Write(src); err != nil {
			return nil, err
		}
		if err := w.Close(); err != nil {
			return nil, err
		}
		return aw.b, nil
	case CodecZstd:
		return zstdEncoder().EncodeAll(src, dst), nil
	}
	return nil, fmt.Errorf("%w: %d", ErrCodec, c)
}

// grow returns b with room for at least n more bytes.
func grow(b []byte, n int) []byte {
	if cap(b)-len(b) < n {
		nb := make([]byte, len(b), len(b)+n)
		copy(nb, b)
		return nb
	}
	return b
}

// ---- decompression ----

var (
	gzipReaders = sync.Pool{New: func() any { return new(gzip.Reader) }}
	lz4Readers  = sync.Pool{New: func() any { return lz4.NewReader(nil) }}
	zstdDecoder = sync.OnceValue(func() *zstd.Decoder {
		// DecodeAll is safe for concurrent use. With the cap limit,
		// DecodeAll never writes more than cap(dst)-len(dst) bytes: the
		// caller's bound holds without allocating a window or a buffer the
		// input does not justify. DecodeAll keeps no window besides dst, so
		// the declared window size costs nothing and is left at the default.
		d, err := zstd.NewReader(nil, zstd.WithDecodeAllCapLimit(true), zstd.WithDecoderConcurrency(0))
		if err != nil {
			panic(err) // only on invalid options
		}
		return d
	})
)

// decompress returns src decompressed with c, at most limit bytes. It returns
// ErrTooLarge when the output would exceed limit, ErrCorrupt when src does not
// decode, ErrCodec for an unknown codec. The result aliases src only for
// CodecNone.
func decompress(c Codec, src []byte, limit int) ([]byte, error) {
	limit = min(max(limit, 0), maxLimit)
	switch c {
	case CodecGzip:
		r := gzipReaders.Get().(*gzip.Reader)
		defer gzipReaders.Put(r)
		if err := r.Reset(bytes.NewReader(src)); err != nil {
			return nil, fmt.Errorf("%w: gzip: %v", ErrCorrupt, err)
		}
		return readAllLimited(r, len(src), limit, "gzip")
	case CodecLZ4:
		r := lz4Readers.Get().(*lz4.Reader)
		defer lz4Readers.Put(r)
		r.Reset(bytes.NewReader(src))
		out, err := readAllLimited(r, len(src), limit, "lz4")
		r.Reset(nil) // release the block buffer to lz4's pool
		return out, err
	case CodecSnappy:
		return decompressSnappy(src, limit)
	case CodecZstd:
		return decompressZstd(src, limit)
	case CodecNone:
		return src, nil
	}
	return nil, fmt.Errorf("%w: %d", ErrCodec, c)
}

// readAllLimited reads r to the end, failing with ErrTooLarge past limit
// bytes. The buffer starts from a guess the input justifies and doubles, but
// never beyond limit+1 bytes, so a bomb costs at most about 2*limit bytes of
// allocation in all.
func readAllLimited(r io.Reader, srcLen, limit int, name string) ([]byte, error) {
	buf := make([]byte, 0, min(limit+1, 4*srcLen+512))
	for {
		if len(buf) == cap(buf) {
			if len(buf) > limit {
				return nil, fmt.Errorf("%w: %s: more than %d bytes", ErrTooLarge, name, limit)
			}
			nb := make([]byte, len(buf), min(limit+1, max(2*cap(buf), 512)))
			copy(nb, buf)
			buf = nb
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			if len(buf) > limit {
				return nil, fmt.Errorf("%w: %s: more than %d bytes", ErrTooLarge, name, limit)
			}
			return buf, nil
		}
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %v", ErrCorrupt, name, err)
		}
	}
}

// xerialMagic starts snappy data framed by snappy-java's SnappyOutputStream,
// which Kafka's Java client writes: the magic, two int32 versions, then
// repeated [int32 big-endian chunk length][raw snappy block].
var xerialMagic = []byte{0x82, 'S', 'N', 'A', 'P', 'P', 'Y', 0}

const xerialHeaderLen = 16

func decompressSnappy(src []byte, limit int) ([]byte, error) {
	if len(src) >= xerialHeaderLen && bytes.HasPrefix(src, xerialMagic) {
		return decompressXerial(src[xerialHeaderLen:], limit)
	}
	n, err := s2.DecodedLen(src)
	if err != nil {
		return nil, fmt.Errorf("%w: snappy: %v", ErrCorrupt, err)
	}
	if n > limit {
		return nil, fmt.Errorf("%w: snappy: %d bytes > %d", ErrTooLarge, n, limit)
	}
	out, err := s2.Decode(nil, src)
	if err != nil {
		return nil, fmt.Errorf("%w: snappy: %v", ErrCorrupt, err)
	}
	return out, nil
}

// decompressXerial decodes xerial chunks (after the 16-byte header). It sums
// the decoded lengths the chunks declare first, so that the bound is checked
// before anything is allocated and the output is allocated once.
func decompressXerial(src []byte, limit int) ([]byte, error) {
	total := 0
	for rem := src; len(rem) > 0; {
		chunk, next, err := xerialChunk(rem)
		if err != nil {
			return nil, err
		}
		n, err := s2.DecodedLen(chunk)
		if err != nil {
			return nil, fmt.Errorf("%w: snappy (xerial): %v", ErrCorrupt, err)
		}
		if n > limit-total {
			return nil, fmt.Errorf("%w: snappy (xerial): more than %d bytes", ErrTooLarge, limit)
		}
		total += n
		rem = next
	}
	out := make([]byte, total)
	at := 0
	for len(src) > 0 {
		chunk, next, _ := xerialChunk(src)
		n, _ := s2.DecodedLen(chunk)
		dec, err := s2.Decode(out[at:at+n], chunk)
		if err != nil || len(dec) != n {
			return nil, fmt.Errorf("%w: snappy (xerial): %v", ErrCorrupt, err)
		}
		at += n
		src = next
	}
	return out, nil
}

func xerialChunk(b []byte) (chunk, rest []byte, err error) {
	if len(b) < 4 {
		return nil, nil, fmt.Errorf("%w: snappy (xerial): %d trailing bytes", ErrCorrupt, len(b))
	}
	n := binary.BigEndian.Uint32(b)
	b = b[4:]
	if uint64(n) > uint64(len(b)) {
		return nil, nil, fmt.Errorf("%w: snappy (xerial): chunk of %d bytes, %d left", ErrCorrupt, n, len(b))
	}
	return b[:n], b[n:], nil
}

// maxLimit caps the caller's limit so that arithmetic on it cannot overflow;
// no batch comes near it.
const maxLimit = 1 << 40

// zstdSlack is room for one more block beyond the caller's limit: a zstd
// block produces at most 128 KiB, and the decoder overwrites up to 32 bytes
// past it.
const zstdSlack = 128<<10 + 64

// zstdMinGuess is the smallest first output buffer for zstd data that does
// not declare its content size.
const zstdMinGuess = 64 << 10

// decompressZstd decodes with DecodeAll into a buffer whose capacity bounds
// the output (WithDecodeAllCapLimit). The buffer is sized from the frame's
// declared content size when present (librdkafka, franz-go and this package
// write it) and otherwise from a guess grown geometrically up to
// limit+zstdSlack.
//
// When the buffer is too small the decoder reports either
// ErrDecoderSizeExceeded or a generic "output bigger than max block size".
// A failure with at least zstdSlack bytes of room left cannot be for lack of
// room, so it is corruption; otherwise the buffer grows, and once it has
// limit+zstdSlack bytes, running out of room means the output exceeds limit.
func decompressZstd(src []byte, limit int) ([]byte, error) {
	final := limit + zstdSlack
	size := min(final, max(zstdMinGuess, 8*len(src))+zstdSlack)
	var fh zstd.Header
	if fh.Decode(src) == nil && fh.HasFCS {
		if fh.FrameContentSize > uint64(limit) {
			return nil, fmt.Errorf("%w: zstd: frame declares %d bytes > %d", ErrTooLarge, fh.FrameContentSize, limit)
		}
		size = int(fh.FrameContentSize)
	}
	dec := zstdDecoder()
	for {
		out, err := dec.DecodeAll(src, make([]byte, 0, size))
		switch {
		case err == nil && len(out) <= limit:
			return out, nil
		case err == nil:
			return nil, fmt.Errorf("%w: zstd: more than %d bytes", ErrTooLarge, limit)
		case !errors.Is(err, zstd.ErrDecoderSizeExceeded) && len(out)+zstdSlack <= size:
			return nil, fmt.Errorf("%w: zstd: %v", ErrCorrupt, err)
		case size >= final:
			if errors.Is(err, zstd.ErrDecoderSizeExceeded) || len(out) > limit {
				return nil, fmt.Errorf("%w: zstd: more than %d bytes", ErrTooLarge, limit)
			}
			return nil, fmt.Errorf("%w: zstd: %v", ErrCorrupt, err)
		}
		size = min(final, max(size*4, zstdMinGuess+zstdSlack))
	}
}
