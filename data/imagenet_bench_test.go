package data

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"
)

// The synthetic ImageNet-like folder of the benchmarks: benchImages JPEGs
// in two classes, of sizes around ImageNet's average (about 500x375, width
// 400..600, height 300..450), encoded at quality 90 from smooth colour fields
// with noise, so that they compress about as well as photographs.
const benchImages = 256

var (
	benchFolderOnce sync.Once
	benchFolderDir  string
	benchFolderErr  error
)

// benchImageFolder returns the synthetic folder, writing it first if needed:
// it lives in os.TempDir under a fixed name and is reused by later runs
// (delete it to make it again).
func benchImageFolder(b *testing.B) *ImageFolder {
	b.Helper()
	benchFolderOnce.Do(func() {
		dir := filepath.Join(os.TempDir(), fmt.Sprintf("sgt-bench-imagenet-%d", benchImages))
		if _, err := os.Stat(filepath.Join(dir, "done")); err != nil {
			benchFolderErr = writeBenchFolder(dir)
		}
		benchFolderDir = dir
	})
	if benchFolderErr != nil {
		b.Fatal(benchFolderErr)
	}
	f, err := OpenImageFolder(benchFolderDir, "train")
	if err != nil {
		b.Fatal(err)
	}
	return f
}

// writeBenchFolder generates the benchmark's JPEG files.
func writeBenchFolder(dir string) error {
	rng := rand.New(rand.NewPCG(42, 7))
	var total int64
	for i := range benchImages {
		class := []string{"n01", "n02"}[i%2]
		w, h := 400+rng.IntN(201), 300+rng.IntN(151)
		m := image.NewRGBA(image.Rect(0, 0, w, h))
		fx, fy := 2+rng.Float64()*6, 2+rng.Float64()*6
		phase := rng.Float64() * 6
		for y := range h {
			for x := range w {
				u, v := float64(x)/float64(w), float64(y)/float64(h)
				r := 128 + 90*math.Sin(fx*u+phase) + float64(rng.IntN(41)-20)
				g := 128 + 90*math.Cos(fy*v+phase) + float64(rng.IntN(41)-20)
				bl := 128 + 60*math.Sin(fx*u+fy*v) + float64(rng.IntN(41)-20)
				m.SetRGBA(x, y, color.RGBA{clampByte(r), clampByte(g), clampByte(bl), 255})
			}
		}
		var buf bytes.Buffer
		if err := jpeg.Encode(&buf, m, &jpeg.Options{Quality: 90}); err != nil {
			return err
		}
		p := filepath.Join(dir, "train", class, fmt.Sprintf("%04d.jpg", i))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
			return err
		}
		total += int64(buf.Len())
	}
	return os.WriteFile(filepath.Join(dir, "done"), []byte(fmt.Sprintf("%d files, %d bytes\n", benchImages, total)), 0o644)
}

func clampByte(v float64) uint8 { return uint8(min(255, max(0, v))) }

// benchMeter reports a benchmark's images/s (wall clock) and the process's
// CPU milliseconds per image (user and system time of every goroutine, the
// garbage collector's too), which other programs on a busy machine disturb
// less than the wall clock.
type benchMeter struct {
	start time.Time
	cpu   time.Duration
}

func startMeter() benchMeter { return benchMeter{time.Now(), processCPUTime()} }

func (m benchMeter) report(b *testing.B, images int) {
	wall := time.Since(m.start)
	b.ReportMetric(float64(images)/wall.Seconds(), "images/s")
	if cpu := processCPUTime() - m.cpu; cpu > 0 && images > 0 {
		b.ReportMetric(cpu.Seconds()*1e3/float64(images), "cpu-ms/image")
	}
}

// BenchmarkImageNetLoader measures the loader's own throughput on ImageNet
// -size JPEGs: read, decode, RandomResizedCrop to 224x224 with flips, and
// normalise into float32 batches of 64, with 1, 2, 4, ... workers up to
// the number of CPUs (and that number). It reports images/s (the whole
// batch pipeline, as the trainer sees it) and CPU milliseconds per image.
func BenchmarkImageNetLoader(b *testing.B) {
	f := benchImageFolder(b)
	norm, _ := DefaultNormalization("imagenet")
	for _, workers := range workerCounts(runtime.NumCPU()) {
		b.Run(fmt.Sprintf("workers=%d", workers), func(b *testing.B) {
			l, err := NewLoader(f, LoaderOptions{BatchOptions: BatchOptions{BatchSize: 64, Shuffle: true, DropLast: true,
				Transform: RandomResizedCrop{Size: 224, Flip: true}, Norm: norm}, Workers: workers})
			if err != nil {
				b.Fatal(err)
			}
			defer l.Close()
			b.ReportAllocs()
			m := startMeter()
			n := 0
			for b.Loop() {
				batch, err := l.Next()
				if err == io.EOF {
					batch, err = l.Next()
				}
				if err != nil {
					b.Fatal(err)
				}
				n += batch.N
				l.Release(batch)
			}
			m.report(b, n)
		})
	}
}

// workerCounts returns 1, 2, 4, ... below n, and n.
func workerCounts(n int) []int {
	var out []int
	for w := 1; w < n; w *= 2 {
		out = append(out, w)
	}
	return append(out, max(n, 1))
}

// benchFiles reads the benchmark's JPEG files into memory.
func benchFiles(b *testing.B) [][]byte {
	f := benchImageFolder(b)
	raws := make([][]byte, len(f.Files))
	for i, p := range f.Files {
		raw, err := os.ReadFile(p)
		if err != nil {
			b.Fatal(err)
		}
		raws[i] = raw
	}
	return raws
}

// The stages of the loader one by one, on one goroutine, each reporting
// images/s: Go's JPEG decoder alone (from memory), the loader's whole
// decode of a file (read, decode, YCbCr to RGB), the crop-and-resize, and
// the normalisation.

func BenchmarkStageJPEGDecode(b *testing.B) {
	raws := benchFiles(b)
	metered(b, func(i int) {
		if _, err := jpeg.Decode(bytes.NewReader(raws[i%len(raws)])); err != nil {
			b.Fatal(err)
		}
	})
}

func BenchmarkStageDecodeFile(b *testing.B) {
	f := benchImageFolder(b)
	var s Scratch
	metered(b, func(i int) {
		if _, err := decodeImageFile(f.Files[i%len(f.Files)], &s); err != nil {
			b.Fatal(err)
		}
	})
}

// decodedBench returns a few decoded benchmark images.
func decodedBench(b *testing.B) []Image {
	f := benchImageFolder(b)
	imgs := make([]Image, 16)
	for i := range imgs {
		var s Scratch
		img, err := decodeImageFile(f.Files[i], &s)
		if err != nil {
			b.Fatal(err)
		}
		imgs[i] = img
	}
	return imgs
}

func BenchmarkStageRandomResizedCrop(b *testing.B) {
	imgs := decodedBench(b)
	tr := RandomResizedCrop{Size: 224, Flip: true}
	out := make([]float32, 224*224*3)
	var s Scratch
	metered(b, func(i int) {
		rng := NewRNG(1, uint64(i))
		tr.Apply(out, imgs[i%len(imgs)], &rng, &s)
	})
}

func BenchmarkStageNormalize(b *testing.B) {
	norm, _ := DefaultNormalization("imagenet")
	k, err := newBatchCore(indexDataset(1, 224, 224, 3, 2), BatchOptions{BatchSize: 1, Norm: norm})
	if err != nil {
		b.Fatal(err)
	}
	out := make([]float32, 224*224*3)
	metered(b, func(int) { k.normalize(out) })
}

func BenchmarkStageToRGB(b *testing.B) {
	ims := decodedJPEGs(b)
	dst := make([]byte, 600*450*3)
	metered(b, func(i int) {
		im := ims[i%len(ims)]
		toRGB(dst[:im.Bounds().Dx()*im.Bounds().Dy()*3], im)
	})
}

// BenchmarkStageCropNormalized is the crop with the normalisation fused in,
// as the loader runs it.
func BenchmarkStageCropNormalized(b *testing.B) {
	imgs := decodedBench(b)
	norm, _ := DefaultNormalization("imagenet")
	scale, bias, _ := norm.affine(3)
	tr := RandomResizedCrop{Size: 224, Flip: true}
	out := make([]float32, 224*224*3)
	var s Scratch
	metered(b, func(i int) {
		rng := NewRNG(1, uint64(i))
		tr.applyNormalized(out, imgs[i%len(imgs)], &rng, &s, &affine{scale, bias})
	})
}

// decodedJPEGs decodes the first 16 benchmark JPEGs with Go's decoder (to
// YCbCr, as the benchmark's files are).
func decodedJPEGs(b *testing.B) []*image.YCbCr {
	var ims []*image.YCbCr
	for _, raw := range benchFiles(b)[:16] {
		m, err := jpeg.Decode(bytes.NewReader(raw))
		if err != nil {
			b.Fatal(err)
		}
		y, ok := m.(*image.YCbCr)
		if !ok {
			b.Fatalf("decoded a %T, want *image.YCbCr", m)
		}
		ims = append(ims, y)
	}
	return ims
}

// metered runs step(0), step(1), ... as the benchmark's loop and reports
// images/s and CPU ms per image, one image per step.
func metered(b *testing.B, step func(i int)) {
	i := 0
	m := startMeter()
	for b.Loop() {
		step(i)
		i++
	}
	m.report(b, i)
}
