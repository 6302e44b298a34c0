package data

import (
	"image"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// randomYCbCr returns a w x h YCbCr image of random bytes.
func randomYCbCr(rng *rand.Rand, w, h int, ratio image.YCbCrSubsampleRatio) *image.YCbCr {
	m := image.NewYCbCr(image.Rect(0, 0, w, h), ratio)
	for _, p := range [][]byte{m.Y, m.Cb, m.Cr} {
		for i := range p {
			p[i] = byte(rng.IntN(256))
		}
	}
	return m
}

// TestYCbCrToRGBMatchesLibrary checks the row-wise conversion against the
// per-pixel one, byte for byte, for every chroma subsampling, odd sizes and
// sub-images with odd origins.
func TestYCbCrToRGBMatchesLibrary(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	ratios := []image.YCbCrSubsampleRatio{
		image.YCbCrSubsampleRatio444, image.YCbCrSubsampleRatio422, image.YCbCrSubsampleRatio420,
		image.YCbCrSubsampleRatio440, image.YCbCrSubsampleRatio411, image.YCbCrSubsampleRatio410,
	}
	for _, ratio := range ratios {
		for _, size := range [][2]int{{1, 1}, {7, 5}, {16, 16}, {33, 17}} {
			m := randomYCbCr(rng, size[0], size[1], ratio)
			subs := []*image.YCbCr{m}
			if size[0] > 4 && size[1] > 4 {
				subs = append(subs, m.SubImage(image.Rect(1, 3, size[0]-1, size[1]-2)).(*image.YCbCr),
					m.SubImage(image.Rect(3, 1, size[0], size[1])).(*image.YCbCr))
			}
			for _, sub := range subs {
				n := sub.Bounds().Dx() * sub.Bounds().Dy() * 3
				got, want := make([]byte, n), make([]byte, n)
				toRGB(got, sub)
				ycbcrToRGBGeneric(want, sub)
				if !slices.Equal(got, want) {
					t.Errorf("ratio %v, image %v: fast conversion differs from color.YCbCrToRGB", ratio, sub.Bounds())
				}
			}
		}
	}
	// Every (Y, Cb, Cr) triple, for the clamping branches.
	m := image.NewYCbCr(image.Rect(0, 0, 256, 256*256), image.YCbCrSubsampleRatio444)
	for i := range m.Y {
		m.Y[i], m.Cb[i], m.Cr[i] = byte(i>>16), byte(i>>8), byte(i)
	}
	got, want := make([]byte, len(m.Y)*3), make([]byte, len(m.Y)*3)
	toRGB(got, m)
	ycbcrToRGBGeneric(want, m)
	if !slices.Equal(got, want) {
		t.Error("fast conversion differs from color.YCbCrToRGB on some (Y, Cb, Cr)")
	}
}

// sampleBilinearReference is the bilinear sampler as it was before the
// normalisation was fused into it (the same arithmetic, one value at a time).
func sampleBilinearReference(dst []float32, oh, ow int, src Image, top, left, scaleY, scaleX float64, clip window, flip bool) {
	c := src.Channels
	x0s, x1s, wxs := make([]int, ow), make([]int, ow), make([]float32, ow)
	for ox := range ow {
		a, b, w := bilinearTaps(left+(float64(ox)+0.5)*scaleX-0.5, clip.x0, clip.x1)
		col := ox
		if flip {
			col = ow - 1 - ox
		}
		x0s[col], x1s[col], wxs[col] = a, b, w
	}
	rowStride := src.Width * c
	for oy := range oh {
		a, b, wy := bilinearTaps(top+(float64(oy)+0.5)*scaleY-0.5, clip.y0, clip.y1)
		rowA := src.Pix[a*rowStride : (a+1)*rowStride]
		rowB := src.Pix[b*rowStride : (b+1)*rowStride]
		out := dst[oy*ow*c : (oy+1)*ow*c]
		for ox := range ow {
			xa, xb, wx := x0s[ox]*c, x1s[ox]*c, wxs[ox]
			o := out[ox*c : ox*c+c]
			for ch := range o {
				ta := float32(rowA[xa+ch]) + wx*(float32(rowA[xb+ch])-float32(rowA[xa+ch]))
				tb := float32(rowB[xa+ch]) + wx*(float32(rowB[xb+ch])-float32(rowB[xa+ch]))
				o[ch] = ta + wy*(tb-ta)
			}
		}
	}
}

func sameBits(a, b []float32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if math.Float32bits(a[i]) != math.Float32bits(b[i]) {
			return false
		}
	}
	return true
}

// TestFusedNormalizationIsExact checks that the transforms that normalise
// as they write give the same float32 bits as transforming and normalising
// in two passes, and that the sampler gives the values of the reference.
func TestFusedNormalizationIsExact(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	norm, _ := DefaultNormalization("imagenet")
	for _, c := range []int{1, 3, 4} {
		n := Normalization{Mean: norm.Mean[:1], Std: norm.Std[:1]}
		if c == 3 {
			n = norm
		}
		scale, bias, err := n.affine(c)
		if err != nil {
			t.Fatal(err)
		}
		k := &batchCore{channels: c, scale: scale, bias: bias}
		for trial := range 20 {
			h, w := 5+rng.IntN(60), 5+rng.IntN(60)
			pix := make([]byte, h*w*c)
			for i := range pix {
				pix[i] = byte(rng.IntN(256))
			}
			src := Image{Pix: pix, Height: h, Width: w, Channels: c}
			for _, tr := range []normalizingTransform{
				RandomResizedCrop{Size: 17, Flip: true}, ResizeCenterCrop{Size: 13}, Resize{Height: 9, Width: 23},
			} {
				oh, ow, _ := tr.OutputShape(0, 0, c)
				var s Scratch
				r1, r2 := NewRNG(9, uint64(trial)), NewRNG(9, uint64(trial))
				two := make([]float32, oh*ow*c)
				tr.Apply(two, src, &r1, &s)
				plain := append([]float32(nil), two...)
				k.normalize(two)
				fused := make([]float32, oh*ow*c)
				tr.applyNormalized(fused, src, &r2, &s, &affine{scale, bias})
				if !sameBits(fused, two) {
					t.Errorf("%T, %d channels, %dx%d: fused normalisation differs from two passes", tr, c, h, w)
				}
				if r1 != r2 {
					t.Errorf("%T: the two paths drew different random numbers", tr)
				}
				// The sampler itself against the reference.
				if rr, ok := tr.(RandomResizedCrop); ok {
					r3 := NewRNG(9, uint64(trial))
					top, left, ch, cw := rr.crop(h, w, &r3)
					flip := rr.Flip && r3.Bool()
					ref := make([]float32, oh*ow*c)
					sampleBilinearReference(ref, rr.Size, rr.Size, src, float64(top), float64(left),
						float64(ch)/float64(rr.Size), float64(cw)/float64(rr.Size), window{top, top + ch, left, left + cw}, flip)
					if !sameBits(ref, plain) {
						t.Errorf("random-resized-crop, %d channels: sampler differs from the reference", c)
					}
				}
			}
		}
	}
}

func BenchmarkToRGBGeneric(b *testing.B) {
	ims := decodedJPEGs(b)
	dst := make([]byte, 600*450*3)
	metered(b, func(i int) { ycbcrToRGBGeneric(dst, ims[i%len(ims)]) })
}
