package data

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// idxBytes builds an idx stream by hand (independently of EncodeIDX) from a
// magic number, dimension words and a payload.
func idxBytes(magic uint32, dims []uint32, payload []byte) []byte {
	var b bytes.Buffer
	binary.Write(&b, binary.BigEndian, magic)
	for _, d := range dims {
		binary.Write(&b, binary.BigEndian, d)
	}
	b.Write(payload)
	return b.Bytes()
}

// gzipped compresses data.
func gzipped(t *testing.T, data []byte) []byte {
	t.Helper()
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	if _, err := zw.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// writeFile writes data to a new file in dir and returns its path.
func writeFile(t *testing.T, dir, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// pattern returns n bytes of a non-trivial pattern.
func pattern(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + i/251)
	}
	return b
}

func TestIDXRoundTrip(t *testing.T) {
	dir := t.TempDir()
	cases := [][]int{{5}, {3, 4, 2}, {2, 3, 4, 5}, {1, 1}}
	for ci, dims := range cases {
		n := 1
		for _, d := range dims {
			n *= d
		}
		data := pattern(n)
		for _, compress := range []bool{false, true} {
			p := filepath.Join(dir, fmt.Sprintf("case%d-gzip%v.idx", ci, compress))
			if err := WriteIDXFile(p, dims, data, compress); err != nil {
				t.Fatalf("WriteIDXFile(%v, gzip=%v): %v", dims, compress, err)
			}
			raw, _ := os.ReadFile(p)
			isGzip := len(raw) > 2 && raw[0] == 0x1f && raw[1] == 0x8b
			if isGzip != compress {
				t.Errorf("dims %v: gzip magic present = %v, want %v", dims, isGzip, compress)
			}
			if !compress {
				u32 := make([]uint32, len(dims))
				for i, d := range dims {
					u32[i] = uint32(d)
				}
				if want := idxBytes(0x00000800+uint32(len(dims)), u32, data); !bytes.Equal(raw, want) {
					t.Errorf("dims %v: written bytes differ from the idx layout", dims)
				}
			}
			got, err := ReadIDXFile(p)
			if err != nil {
				t.Fatalf("ReadIDXFile(%s): %v", p, err)
			}
			if !slices.Equal(got.Dims, dims) || !bytes.Equal(got.Data, data) {
				t.Errorf("dims %v gzip=%v: read back dims %v and %d bytes, want the written ones", dims, compress, got.Dims, len(got.Data))
			}
		}
	}
}

func TestIDXCorruptionNamesFile(t *testing.T) {
	dir := t.TempDir()
	good := idxBytes(0x00000803, []uint32{2, 3, 4}, pattern(24))
	gz := gzipped(t, good)
	flipped := slices.Clone(gz)
	flipped[len(flipped)/2] ^= 0xff
	badCRC := slices.Clone(gz)
	badCRC[len(badCRC)-6] ^= 0x01 // inside the CRC-32 of the trailer
	big := gzipped(t, idxBytes(0x00000803, []uint32{50, 10, 10}, pattern(5000)))
	big[len(big)/2] ^= 0x55
	badHeader := slices.Clone(gz)
	badHeader[2] = 0x07 // compression method other than deflate
	cases := []struct {
		name, want string
		data       []byte
	}{
		{"nonzero-magic-prefix", "bad magic", idxBytes(0x01000803, []uint32{2, 3, 4}, pattern(24))},
		{"float-type", "element type 0x0D", idxBytes(0x00000D03, []uint32{2, 3, 4}, pattern(24))},
		{"zero-dims", "zero dimensions", idxBytes(0x00000800, nil, nil)},
		{"zero-dimension", "dimension 1 is zero", idxBytes(0x00000803, []uint32{2, 0, 4}, nil)},
		{"huge-dimensions", "more than", idxBytes(0x00000803, []uint32{1 << 30, 1 << 30, 4}, nil)},
		{"short-header", "truncated header", idxBytes(0x00000803, []uint32{2}, nil)},
		{"short-magic", "truncated", []byte{0, 0}},
		{"empty", "truncated header", nil},
		{"truncated-payload", "truncated payload", good[:len(good)-1]},
		{"trailing-bytes", "trailing bytes", append(slices.Clone(good), 0)},
		{"truncated-payload-gz", "truncated payload", gzipped(t, good[:len(good)-5])},
		{"trailing-bytes-gz", "3 trailing bytes", gzipped(t, append(slices.Clone(good), 1, 2, 3))},
		{"corrupt-gzip-data", "gzip", flipped},
		{"corrupt-gzip-crc", "gzip", badCRC},
		{"corrupt-gzip-large", "gzip", big},
		{"corrupt-gzip-header", "gzip", badHeader},
		{"truncated-gzip", "truncated", gz[:len(gz)-3]},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := writeFile(t, dir, c.name+".idx", c.data)
			got, err := ReadIDXFile(p)
			if err == nil {
				t.Fatalf("ReadIDXFile accepted corrupt file: dims %v", got.Dims)
			}
			t.Log(err)
			if !strings.Contains(err.Error(), p) {
				t.Errorf("error %q does not name the file %s", err, p)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %q does not say %q", err, c.want)
			}
		})
	}
	if _, err := ReadIDXFile(filepath.Join(dir, "missing.idx")); err == nil || !strings.Contains(err.Error(), "missing.idx") {
		t.Errorf("missing file: error %v does not name it", err)
	}
}

func TestEncodeIDXRejectsBadInput(t *testing.T) {
	var b bytes.Buffer
	for _, c := range []struct {
		dims []int
		n    int
	}{{nil, 0}, {[]int{2, 3}, 5}, {[]int{0}, 0}, {[]int{-1, 2}, 2}} {
		if err := EncodeIDX(&b, c.dims, make([]byte, c.n)); err == nil {
			t.Errorf("EncodeIDX(%v, %d bytes) accepted bad input", c.dims, c.n)
		}
	}
}

func BenchmarkReadIDXGzip(b *testing.B) {
	raw := idxBytes(0x00000803, []uint32{1000, 28, 28}, pattern(1000*28*28))
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(raw)
	zw.Close()
	b.SetBytes(int64(len(raw)))
	for b.Loop() {
		if _, err := ReadIDX(bytes.NewReader(buf.Bytes()), "bench"); err != nil {
			b.Fatal(err)
		}
	}
}
