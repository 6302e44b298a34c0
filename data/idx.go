package data

import (
	"bufio"
	"compress/flate"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
)

// idxTypeUnsignedByte is the idx type code of unsigned 8-bit data, the only
// element type the image datasets use.
const idxTypeUnsignedByte = 0x08

// maxIDXElements bounds the element count an idx header may declare, so that a
// corrupt header cannot make the reader allocate absurd amounts of memory
// (16 GiB is far above any dataset this package reads).
const maxIDXElements = 1 << 34

// idxTypeName names an element type code of the idx format, for error messages.
func idxTypeName(code byte) string {
	switch code {
	case 0x08:
		return "unsigned byte"
	case 0x09:
		return "signed byte"
	case 0x0B:
		return "int16"
	case 0x0C:
		return "int32"
	case 0x0D:
		return "float32"
	case 0x0E:
		return "float64"
	}
	return "unknown"
}

// IDX is the content of an idx file of unsigned bytes: its dimensions and the
// payload in row-major order. The magic number of such a file is
// 0x00000800 + len(Dims), e.g. 0x00000801 for labels and 0x00000803 for images.
type IDX struct {
	// Dims are the sizes of the dimensions, outermost first.
	Dims []int
	// Data holds the product of Dims bytes.
	Data []byte
}

// ReadIDXFile reads an idx file of unsigned bytes, gzip-compressed or raw (told
// apart by the gzip magic bytes). It validates the magic number, the
// dimensions, and that the payload has exactly the declared length; every error
// is a *FormatError naming the file.
func ReadIDXFile(path string) (*IDX, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("idx file %w", badFile(path, unwrapPath(err)))
	}
	defer f.Close()
	return ReadIDX(f, path)
}

// ReadIDX reads idx data (gzip-compressed or raw) from r; name identifies the
// source in error messages (usually the file path). See ReadIDXFile.
func ReadIDX(r io.Reader, name string) (*IDX, error) {
	br := bufio.NewReaderSize(r, 1<<16)
	head, err := br.Peek(2)
	if len(head) < 2 {
		if err != nil && err != io.EOF {
			return nil, fmt.Errorf("idx file %w", badFile(name, err))
		}
		return nil, fmt.Errorf("idx file %w", badFile(name, fmt.Errorf("truncated header: %d bytes", len(head))))
	}
	var src io.Reader = br
	compressed := head[0] == 0x1f && head[1] == 0x8b
	if compressed {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("idx file %w", badFile(name, fmt.Errorf("corrupt gzip: %w", err)))
		}
		defer zr.Close()
		src = zr
	}
	idx, err := decodeIDX(src)
	if err != nil {
		if compressed && isGzipError(err) {
			return nil, fmt.Errorf("idx file %w", badFile(name, fmt.Errorf("corrupt gzip stream: %w", err)))
		}
		return nil, fmt.Errorf("idx file %w", badFile(name, err))
	}
	return idx, nil
}

// isGzipError reports whether err comes from the gzip layer (bad header,
// corrupt deflate data, checksum or length mismatch) rather than from the idx
// content.
func isGzipError(err error) bool {
	var corrupt flate.CorruptInputError
	var internal flate.InternalError
	return errors.Is(err, gzip.ErrChecksum) || errors.Is(err, gzip.ErrHeader) ||
		errors.As(err, &corrupt) || errors.As(err, &internal)
}

// readFull is io.ReadFull that reports a short read as a truncation of what
// was being read.
func readFull(r io.Reader, buf []byte, what string) error {
	n, err := io.ReadFull(r, buf)
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		return fmt.Errorf("truncated %s: got %d of %d bytes", what, n, len(buf))
	}
	if err != nil {
		return fmt.Errorf("reading %s: %w", what, err)
	}
	return nil
}

// decodeIDX parses an uncompressed idx stream.
func decodeIDX(r io.Reader) (*IDX, error) {
	var magic [4]byte
	if err := readFull(r, magic[:], "magic number"); err != nil {
		return nil, err
	}
	if magic[0] != 0 || magic[1] != 0 {
		return nil, fmt.Errorf("bad magic number 0x%08X: the first two bytes of an idx file must be zero", binary.BigEndian.Uint32(magic[:]))
	}
	if magic[2] != idxTypeUnsignedByte {
		return nil, fmt.Errorf("bad magic number 0x%08X: element type 0x%02X (%s) is not supported, want 0x08 (unsigned byte)",
			binary.BigEndian.Uint32(magic[:]), magic[2], idxTypeName(magic[2]))
	}
	ndims := int(magic[3])
	if ndims == 0 {
		return nil, fmt.Errorf("bad magic number 0x%08X: zero dimensions", binary.BigEndian.Uint32(magic[:]))
	}
	header := make([]byte, 4*ndims)
	if err := readFull(r, header, "header"); err != nil {
		return nil, err
	}
	dims := make([]int, ndims)
	total := uint64(1)
	for i := range dims {
		d := binary.BigEndian.Uint32(header[4*i:])
		if d == 0 {
			return nil, fmt.Errorf("dimension %d is zero", i)
		}
		dims[i] = int(d)
		total *= uint64(d)
		if total > maxIDXElements {
			return nil, fmt.Errorf("dimensions %v declare more than %d elements", header2dims(header), uint64(maxIDXElements))
		}
	}
	payload, err := readExactly(r, int(total))
	if err != nil {
		return nil, err
	}
	// Anything after the payload is corruption (or a different file glued on).
	var extra [1]byte
	n, err := io.ReadFull(r, extra[:])
	if n > 0 {
		rest, _ := io.Copy(io.Discard, r)
		return nil, fmt.Errorf("%d trailing bytes after the %d-byte payload of dimensions %v", rest+1, total, dims)
	}
	if err != nil && err != io.EOF {
		if err == io.ErrUnexpectedEOF {
			return nil, fmt.Errorf("truncated stream after the payload: %w", err)
		}
		return nil, fmt.Errorf("reading past the payload: %w", err)
	}
	return &IDX{Dims: dims, Data: payload}, nil
}

// header2dims decodes the dimension words of an idx header, for error messages.
func header2dims(header []byte) []uint32 {
	out := make([]uint32, len(header)/4)
	for i := range out {
		out[i] = binary.BigEndian.Uint32(header[4*i:])
	}
	return out
}

// readExactly reads exactly n bytes from r. It grows its buffer as data
// arrives (rather than trusting n up front beyond a modest size), so a corrupt
// header cannot force a huge allocation for a short stream.
func readExactly(r io.Reader, n int) ([]byte, error) {
	const chunk = 1 << 26
	buf := make([]byte, 0, min(n, chunk))
	for len(buf) < n {
		if len(buf) == cap(buf) {
			grown := make([]byte, len(buf), min(n, 2*cap(buf)))
			copy(grown, buf)
			buf = grown
		}
		m, err := io.ReadFull(r, buf[len(buf):min(n, cap(buf))])
		buf = buf[:len(buf)+m]
		if err != nil {
			if err == io.EOF || err == io.ErrUnexpectedEOF {
				return nil, fmt.Errorf("truncated payload: got %d of %d bytes", len(buf), n)
			}
			return nil, fmt.Errorf("reading payload: %w", err)
		}
	}
	return buf, nil
}

// EncodeIDX writes dims and data as an uncompressed idx stream of unsigned
// bytes. len(data) must equal the product of dims, and every dimension must be
// in [1, 2^32).
func EncodeIDX(w io.Writer, dims []int, data []byte) error {
	if len(dims) == 0 || len(dims) > 255 {
		return fmt.Errorf("idx: %d dimensions, want 1 to 255", len(dims))
	}
	header := make([]byte, 4+4*len(dims))
	header[2] = idxTypeUnsignedByte
	header[3] = byte(len(dims))
	total := 1
	for i, d := range dims {
		if d < 1 || uint64(d) > math.MaxUint32 {
			return fmt.Errorf("idx: dimension %d is %d, want 1 to %d", i, d, uint64(math.MaxUint32))
		}
		binary.BigEndian.PutUint32(header[4+4*i:], uint32(d))
		total *= d
	}
	if total != len(data) {
		return fmt.Errorf("idx: dimensions %v hold %d bytes but data has %d", dims, total, len(data))
	}
	if _, err := w.Write(header); err != nil {
		return fmt.Errorf("idx: writing header: %w", err)
	}
	if _, err := w.Write(data); err != nil {
		return fmt.Errorf("idx: writing payload: %w", err)
	}
	return nil
}

// WriteIDXFile writes dims and data to path as an idx file of unsigned bytes,
// gzip-compressed when compress is true.
func WriteIDXFile(path string, dims []int, data []byte, compress bool) (err error) {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("idx: %w", err)
	}
	defer func() {
		if cerr := f.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("idx file %s: %w", path, cerr)
		}
	}()
	bw := bufio.NewWriter(f)
	var w io.Writer = bw
	var zw *gzip.Writer
	if compress {
		zw = gzip.NewWriter(bw)
		w = zw
	}
	if err := EncodeIDX(w, dims, data); err != nil {
		return fmt.Errorf("idx file %s: %w", path, err)
	}
	if zw != nil {
		if err := zw.Close(); err != nil {
			return fmt.Errorf("idx file %s: %w", path, err)
		}
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("idx file %s: %w", path, err)
	}
	return nil
}
