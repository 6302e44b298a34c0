package data

import (
	"math"
	"testing"
)

// gradientImage returns an h x w x c image with value a*x + b*y + 10*ch.
func gradientImage(h, w, c int, a, b float64) Image {
	img := Image{Pix: make([]byte, h*w*c), Height: h, Width: w, Channels: c}
	for y := range h {
		for x := range w {
			for ch := range c {
				img.Pix[(y*w+x)*c+ch] = byte(a*float64(x) + b*float64(y) + 10*float64(ch))
			}
		}
	}
	return img
}

// clampF clamps v to [lo, hi].
func clampF(v, lo, hi float64) float64 { return math.Max(lo, math.Min(hi, v)) }

func TestResizeBilinearMatchesDefinition(t *testing.T) {
	src := gradientImage(5, 6, 2, 10, 20)
	// Bilinear interpolation reproduces a linear function exactly, with the
	// source position of output pixel o being (o+0.5)*in/out - 0.5 clamped
	// to the image.
	for _, size := range [][2]int{{5, 6}, {10, 12}, {7, 3}, {2, 2}, {13, 9}} {
		oh, ow := size[0], size[1]
		got, err := ResizeBilinear(src, oh, ow)
		if err != nil {
			t.Fatal(err)
		}
		var tr Resize = Resize{Height: oh, Width: ow}
		floats := make([]float32, oh*ow*2)
		var s Scratch
		tr.Apply(floats, src, nil, &s)
		for oy := range oh {
			sy := clampF((float64(oy)+0.5)*5/float64(oh)-0.5, 0, 4)
			for ox := range ow {
				sx := clampF((float64(ox)+0.5)*6/float64(ow)-0.5, 0, 5)
				for ch := range 2 {
					want := 10*sx + 20*sy + 10*float64(ch)
					i := (oy*ow+ox)*2 + ch
					if math.Abs(float64(floats[i])-want) > 1e-3 {
						t.Fatalf("%dx%d: pixel (%d,%d,%d) = %v, want %v", oh, ow, oy, ox, ch, floats[i], want)
					}
					if math.Abs(float64(got.Pix[i])-want) > 0.5+1e-3 {
						t.Fatalf("%dx%d bytes: pixel (%d,%d,%d) = %v, want %v", oh, ow, oy, ox, ch, got.Pix[i], want)
					}
				}
			}
		}
	}
	// Halving averages 2x2 blocks of any image.
	src = Image{Pix: pattern(8 * 6), Height: 8, Width: 6, Channels: 1}
	half, _ := ResizeBilinear(src, 4, 3)
	for y := range 4 {
		for x := range 3 {
			p := func(yy, xx int) float64 { return float64(src.Pix[yy*6+xx]) }
			avg := (p(2*y, 2*x) + p(2*y+1, 2*x) + p(2*y, 2*x+1) + p(2*y+1, 2*x+1)) / 4
			if math.Abs(float64(half.Pix[y*3+x])-avg) > 0.5+1e-9 {
				t.Errorf("halved pixel (%d,%d) = %d, block average %v", y, x, half.Pix[y*3+x], avg)
			}
		}
	}
	if _, err := ResizeBilinear(src, 0, 3); err == nil {
		t.Error("resize to zero height accepted")
	}
	if _, err := ResizeBilinear(Image{Pix: []byte{1}, Height: 2, Width: 2, Channels: 1}, 3, 3); err == nil {
		t.Error("inconsistent image accepted")
	}
}

// padCropFlipReference applies the CIFAR augmentation the slow, obvious way:
// build the zero-padded image, crop, mirror.
func padCropFlipReference(src Image, pad int, flipOn bool, rng *RNG) []float32 {
	h, w, c := src.Height, src.Width, src.Channels
	ph, pw := h+2*pad, w+2*pad
	padded := make([]byte, ph*pw*c)
	for y := range h {
		copy(padded[((y+pad)*pw+pad)*c:], src.Pix[y*w*c:(y+1)*w*c])
	}
	top, left := rng.Intn(2*pad+1), rng.Intn(2*pad+1)
	flip := flipOn && rng.Bool()
	out := make([]float32, h*w*c)
	for y := range h {
		for x := range w {
			sx := x
			if flip {
				sx = w - 1 - x
			}
			for ch := range c {
				out[(y*w+x)*c+ch] = float32(padded[((top+y)*pw+left+sx)*c+ch])
			}
		}
	}
	return out
}

func TestPadCropFlipMatchesReference(t *testing.T) {
	src := Image{Pix: pattern(6 * 5 * 3), Height: 6, Width: 5, Channels: 3}
	tr := PadCropFlip{Pad: 2, Flip: true}
	if h, w, err := tr.OutputShape(6, 5, 3); err != nil || h != 6 || w != 5 {
		t.Fatalf("OutputShape = %d, %d, %v", h, w, err)
	}
	out := make([]float32, len(src.Pix))
	var s Scratch
	seen := map[[3]int]bool{}
	for seed := range uint64(600) {
		r1, r2 := NewRNG(seed, 7), NewRNG(seed, 7)
		tr.Apply(out, src, &r1, &s)
		want := padCropFlipReference(src, 2, true, &r2)
		for i := range out {
			if out[i] != want[i] {
				t.Fatalf("seed %d: value %d is %v, reference %v", seed, i, out[i], want[i])
			}
		}
		r3 := NewRNG(seed, 7)
		dy, dx := r3.Intn(5), r3.Intn(5)
		flip := 0
		if r3.Bool() {
			flip = 1
		}
		seen[[3]int{dy, dx, flip}] = true
	}
	if len(seen) != 5*5*2 {
		t.Errorf("600 draws produced %d of the 50 offset/flip combinations", len(seen))
	}
	if _, _, err := (PadCropFlip{Pad: 4}).OutputShape(0, 0, 3); err == nil {
		t.Error("pad-crop-flip accepted images of varying size")
	}
}

func TestRandomResizedCropParameters(t *testing.T) {
	tr := RandomResizedCrop{Size: 16}
	const h, w = 60, 80
	area := float64(h * w)
	fallbacks := 0
	for seed := range uint64(2000) {
		rng := NewRNG(seed)
		top, left, ch, cw := tr.crop(h, w, &rng)
		if ch < 1 || cw < 1 || top < 0 || left < 0 || top+ch > h || left+cw > w {
			t.Fatalf("seed %d: crop (%d,%d) %dx%d outside the %dx%d image", seed, top, left, ch, cw, h, w)
		}
		// Some real-valued crop within rounding of this one has scale in
		// [0.08, 1] and ratio in [3/4, 4/3].
		fc, fw := float64(ch), float64(cw)
		if (fw+0.5)*(fc+0.5) < 0.08*area || (fw-0.5)*(fc-0.5) > area ||
			(fw+0.5)/(fc-0.5) < 0.75 || (fw-0.5)/(fc+0.5) > 4.0/3 {
			t.Errorf("seed %d: crop %dx%d has scale %.3f and ratio %.3f", seed, ch, cw, fw*fc/area, fw/fc)
		}
		if ch == h && cw == w {
			fallbacks++
		}
	}
	if fallbacks > 100 {
		t.Errorf("%d of 2000 crops were the whole image", fallbacks)
	}
	// A very wide image can rarely fit the ratio: the fallback is a centre
	// crop with the ratio clamped to 4/3.
	narrow := RandomResizedCrop{Size: 4, MinScale: 0.99, MaxScale: 1}
	rng := NewRNG(1)
	top, left, ch, cw := narrow.crop(10, 100, &rng)
	if ch != 10 || cw != 13 || top != 0 || left != (100-13)/2 {
		t.Errorf("fallback crop of 10x100 = (%d,%d) %dx%d, want (0,43) 10x13", top, left, ch, cw)
	}
	for _, bad := range []RandomResizedCrop{{Size: 0}, {Size: 4, MinScale: 0.5, MaxScale: 0.2}, {Size: 4, MinRatio: 2, MaxRatio: 1}} {
		if _, _, err := bad.OutputShape(0, 0, 3); err == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
}

func TestRandomResizedCropMatchesCropThenResize(t *testing.T) {
	src := Image{Pix: pattern(30 * 40 * 3), Height: 30, Width: 40, Channels: 3}
	tr := RandomResizedCrop{Size: 12, Flip: true}
	out := make([]float32, 12*12*3)
	var s Scratch
	flips := 0
	for seed := range uint64(50) {
		r1, r2 := NewRNG(seed), NewRNG(seed)
		tr.Apply(out, src, &r1, &s)
		top, left, ch, cw := tr.crop(30, 40, &r2)
		flip := r2.Bool()
		// Reference: copy the crop out, resize it, mirror it.
		crop := Image{Pix: make([]byte, ch*cw*3), Height: ch, Width: cw, Channels: 3}
		for y := range ch {
			copy(crop.Pix[y*cw*3:(y+1)*cw*3], src.Pix[((top+y)*40+left)*3:((top+y)*40+left+cw)*3])
		}
		want := make([]float32, len(out))
		var s2 Scratch
		Resize{Height: 12, Width: 12}.Apply(want, crop, nil, &s2)
		if flip {
			flips++
		}
		for y := range 12 {
			for x := range 12 {
				wx := x
				if flip {
					wx = 11 - x
				}
				for c := range 3 {
					if d := out[(y*12+x)*3+c] - want[(y*12+wx)*3+c]; d > 1e-3 || d < -1e-3 {
						t.Fatalf("seed %d: pixel (%d,%d,%d) differs from crop-then-resize by %v", seed, y, x, c, d)
					}
				}
			}
		}
	}
	if flips == 0 || flips == 50 {
		t.Errorf("%d of 50 crops flipped", flips)
	}
}

func TestResizeCenterCrop(t *testing.T) {
	src := Image{Pix: pattern(8 * 12 * 2), Height: 8, Width: 12, Channels: 2}
	var s Scratch
	// Shorter side already 8: no resizing, just the central 6x6 crop.
	out := make([]float32, 6*6*2)
	ResizeCenterCrop{Resize: 8, Size: 6}.Apply(out, src, nil, &s)
	for y := range 6 {
		for x := range 6 {
			for c := range 2 {
				if want := float32(src.Pix[((y+1)*12+x+3)*2+c]); out[(y*6+x)*2+c] != want {
					t.Fatalf("crop pixel (%d,%d,%d) = %v, want %v", y, x, c, out[(y*6+x)*2+c], want)
				}
			}
		}
	}
	// Halving: the centre 4x4 of the 4x6 resized image.
	half, _ := ResizeBilinear(src, 4, 6)
	out = out[:4*4*2]
	ResizeCenterCrop{Resize: 4, Size: 4}.Apply(out, src, nil, &s)
	for y := range 4 {
		for x := range 4 {
			for c := range 2 {
				want := float64(half.Pix[(y*6+x+1)*2+c])
				if math.Abs(float64(out[(y*4+x)*2+c])-want) > 0.5+1e-3 {
					t.Fatalf("resized crop pixel (%d,%d,%d) = %v, want %v", y, x, c, out[(y*4+x)*2+c], want)
				}
			}
		}
	}
	if _, _, err := (ResizeCenterCrop{Resize: 3, Size: 4}).OutputShape(0, 0, 3); err == nil {
		t.Error("resize smaller than the crop accepted")
	}
	if r := (ResizeCenterCrop{Size: 224}).resize(); r != 256 {
		t.Errorf("default resize for 224 = %d, want 256", r)
	}
	if _, _, err := (Identity{}).OutputShape(0, 0, 3); err == nil {
		t.Error("identity accepted images of varying size")
	}
}

func TestRNG(t *testing.T) {
	a, b := NewRNG(5, 1, 2), NewRNG(5, 1, 2)
	c := NewRNG(5, 2, 1)
	same, differ := true, 0
	for range 100 {
		x, y, z := a.Uint64(), b.Uint64(), c.Uint64()
		same = same && x == y
		if x != z {
			differ++
		}
	}
	if !same || differ < 99 {
		t.Errorf("same keys agree: %v; swapped keys differ in %d of 100 draws", same, differ)
	}
	r := NewRNG(9)
	counts := make([]int, 7)
	for range 70000 {
		v := r.Intn(7)
		if v < 0 || v >= 7 {
			t.Fatalf("Intn(7) = %d", v)
		}
		counts[v]++
		if f := r.Float64(); f < 0 || f >= 1 {
			t.Fatalf("Float64() = %v", f)
		}
	}
	for v, n := range counts {
		if n < 9500 || n > 10500 {
			t.Errorf("Intn(7) gave %d %d times in 70000 draws", v, n)
		}
	}
	if r.Intn(1) != 0 || r.Intn(0) != 0 {
		t.Error("Intn(n <= 1) != 0")
	}
}

func BenchmarkPadCropFlipCIFARBatch(b *testing.B) {
	ds := indexDataset(1024, 32, 32, 3, 10)
	norm, _ := DefaultNormalization("cifar10")
	bt, err := NewBatcher(ds, BatchOptions{BatchSize: 128, Shuffle: true, Transform: CIFARAugmentation(), Norm: norm})
	if err != nil {
		b.Fatal(err)
	}
	images := make([]float32, bt.ImagesLen())
	labels := make([]int32, 128)
	b.SetBytes(128 * 32 * 32 * 3)
	for b.Loop() {
		if _, err := bt.Next(images, labels); err != nil {
			bt.Next(images, labels)
		}
	}
}

func BenchmarkRandomResizedCrop224(b *testing.B) {
	src := Image{Pix: pattern(375 * 500 * 3), Height: 375, Width: 500, Channels: 3}
	tr := RandomResizedCrop{Size: 224, Flip: true}
	out := make([]float32, 224*224*3)
	var s Scratch
	rng := NewRNG(1)
	for b.Loop() {
		tr.Apply(out, src, &rng, &s)
	}
}

func TestDefaultTransforms(t *testing.T) {
	for _, c := range []struct {
		name        string
		size        int
		h, w, c     int // source shape
		outH, outW  int
		trainIsCrop bool
	}{
		{"mnist", 0, 28, 28, 1, 28, 28, false},
		{"cifar10", 0, 32, 32, 3, 32, 32, false},
		{"cifar100", 0, 32, 32, 3, 32, 32, false},
		{"imagefolder", 0, 0, 0, 3, 224, 224, true},
		{"imagenet", 64, 0, 0, 3, 64, 64, true},
	} {
		train, eval, err := DefaultTransforms(c.name, c.size)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		for _, tr := range []Transform{train, eval} {
			h, w, err := tr.OutputShape(c.h, c.w, c.c)
			if err != nil || h != c.outH || w != c.outW {
				t.Errorf("%s %T: output %dx%d, %v; want %dx%d", c.name, tr, h, w, err, c.outH, c.outW)
			}
		}
		if _, isCrop := train.(RandomResizedCrop); isCrop != c.trainIsCrop {
			t.Errorf("%s: training transform %T", c.name, train)
		}
	}
	if _, _, err := DefaultTransforms("svhn", 0); err == nil {
		t.Error("unknown dataset accepted")
	}
}
