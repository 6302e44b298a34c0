package data

import (
	"fmt"
	"math"
)

// Scratch is reusable working memory for transforms, so that steady-state
// batching does not allocate. Each goroutine needs its own; the zero value is
// ready to use.
type Scratch struct {
	x0, x1 []int32   // left and right source columns of each output column
	wx     []float32 // weight of the right column
	pix    []byte    // decoded pixels, for sources that decode
	raw    []byte    // file contents, for sources that decode
	floats []float32 // float image, for byte-output resizing
	rng    RNG       // the current example's generator
}

// window is a rectangle of source pixels [y0, y1) x [x0, x1) that bilinear
// sampling clamps its reads to.
type window struct{ y0, y1, x0, x1 int }

// sampleBilinear writes an oh x ow image with src's channels into dst
// (float32 pixel values, HWC) by bilinear interpolation. Output pixel (oy, ox)
// reads the source at row top + (oy+0.5)*scaleY - 0.5 and column
// left + (ox+0.5)*scaleX - 0.5 (pixel centres at half-integers, as in
// align_corners=false resizing), with positions clamped into clip. With flip,
// the output is mirrored left to right. With norm (per-channel scale and
// bias), each value v is written as v*scale[c] + bias[c], the batcher's
// normalisation, saving it a pass over the example: the bytes are the same
// as normalising afterwards.
func sampleBilinear(dst []float32, oh, ow int, src Image, top, left, scaleY, scaleX float64, clip window, flip bool, s *Scratch, norm *affine) {
	c := src.Channels
	if cap(s.x0) < ow {
		s.x0 = make([]int32, ow)
		s.x1 = make([]int32, ow)
		s.wx = make([]float32, ow)
	}
	x0s, x1s, wxs := s.x0[:ow], s.x1[:ow], s.wx[:ow]
	for ox := range ow {
		a, b, w := bilinearTaps(left+(float64(ox)+0.5)*scaleX-0.5, clip.x0, clip.x1)
		col := ox
		if flip {
			col = ow - 1 - ox
		}
		x0s[col], x1s[col], wxs[col] = int32(a)*int32(c), int32(b)*int32(c), w
	}
	rowStride := src.Width * c
	for oy := range oh {
		a, b, wy := bilinearTaps(top+(float64(oy)+0.5)*scaleY-0.5, clip.y0, clip.y1)
		rowA := src.Pix[a*rowStride : (a+1)*rowStride]
		rowB := src.Pix[b*rowStride : (b+1)*rowStride]
		out := dst[oy*ow*c : (oy+1)*ow*c]
		switch {
		case c == 3 && norm != nil:
			s0, s1, s2 := norm.scale[0], norm.scale[1], norm.scale[2]
			b0, b1, b2 := norm.bias[0], norm.bias[1], norm.bias[2]
			for ox := range ow {
				xa, xb, wx := int(x0s[ox]), int(x1s[ox]), wxs[ox]
				pa, pb, qa, qb := rowA[xa:xa+3], rowA[xb:xb+3], rowB[xa:xa+3], rowB[xb:xb+3]
				o := out[3*ox : 3*ox+3]
				v := lerp2(pa[0], pb[0], qa[0], qb[0], wx, wy)
				o[0] = v*s0 + b0
				v = lerp2(pa[1], pb[1], qa[1], qb[1], wx, wy)
				o[1] = v*s1 + b1
				v = lerp2(pa[2], pb[2], qa[2], qb[2], wx, wy)
				o[2] = v*s2 + b2
			}
		case c == 3:
			for ox := range ow {
				xa, xb, wx := int(x0s[ox]), int(x1s[ox]), wxs[ox]
				pa, pb, qa, qb := rowA[xa:xa+3], rowA[xb:xb+3], rowB[xa:xa+3], rowB[xb:xb+3]
				o := out[3*ox : 3*ox+3]
				o[0] = lerp2(pa[0], pb[0], qa[0], qb[0], wx, wy)
				o[1] = lerp2(pa[1], pb[1], qa[1], qb[1], wx, wy)
				o[2] = lerp2(pa[2], pb[2], qa[2], qb[2], wx, wy)
			}
		default:
			for ox := range ow {
				xa, xb, wx := int(x0s[ox]), int(x1s[ox]), wxs[ox]
				o := out[ox*c : ox*c+c]
				for ch := range o {
					v := lerp2(rowA[xa+ch], rowA[xb+ch], rowB[xa+ch], rowB[xb+ch], wx, wy)
					if norm != nil {
						v = v*norm.scale[ch] + norm.bias[ch]
					}
					o[ch] = v
				}
			}
		}
	}
}

// lerp2 interpolates bilinearly between a0 (left) and a1 (right) in the
// upper row and b0, b1 in the lower one, with weights wx and wy of the right
// and lower samples.
func lerp2(a0, a1, b0, b1 byte, wx, wy float32) float32 {
	ta := float32(a0) + wx*(float32(a1)-float32(a0))
	tb := float32(b0) + wx*(float32(b1)-float32(b0))
	return ta + wy*(tb-ta)
}

// affine is a per-channel normalisation v*scale[c] + bias[c].
type affine struct{ scale, bias []float32 }

// bilinearTaps returns the two source indices around position p, clamped to
// [lo, hi), and the weight of the second.
func bilinearTaps(p float64, lo, hi int) (a, b int, w float32) {
	if p <= float64(lo) {
		return lo, lo, 0
	}
	if p >= float64(hi-1) {
		return hi - 1, hi - 1, 0
	}
	f := math.Floor(p)
	a = int(f)
	return a, a + 1, float32(p - f)
}

// ResizeBilinear returns src resized to height x width by bilinear
// interpolation (pixel centres aligned, no antialiasing filter), rounding to
// the nearest byte.
func ResizeBilinear(src Image, height, width int) (Image, error) {
	if err := checkImage(src); err != nil {
		return Image{}, fmt.Errorf("resize: %w", err)
	}
	if height <= 0 || width <= 0 {
		return Image{}, fmt.Errorf("resize: target size %dx%d must be positive", height, width)
	}
	dst := Image{Pix: make([]byte, height*width*src.Channels), Height: height, Width: width, Channels: src.Channels}
	var s Scratch
	resizeInto(dst, src, &s)
	return dst, nil
}

// resizeInto resizes src into dst's shape, reusing s.
func resizeInto(dst, src Image, s *Scratch) {
	n := len(dst.Pix)
	if cap(s.floats) < n {
		s.floats = make([]float32, n)
	}
	f := s.floats[:n]
	sampleBilinear(f, dst.Height, dst.Width, src, 0, 0,
		float64(src.Height)/float64(dst.Height), float64(src.Width)/float64(dst.Width),
		window{0, src.Height, 0, src.Width}, false, s, nil)
	for i, v := range f {
		dst.Pix[i] = byte(min(max(v+0.5, 0), 255))
	}
}

// checkImage verifies that an image's pixel slice matches its shape.
func checkImage(img Image) error {
	if img.Height <= 0 || img.Width <= 0 || img.Channels <= 0 {
		return fmt.Errorf("bad image shape %dx%dx%d", img.Height, img.Width, img.Channels)
	}
	if len(img.Pix) != img.Height*img.Width*img.Channels {
		return fmt.Errorf("image of shape %dx%dx%d has %d bytes, want %d", img.Height, img.Width, img.Channels, len(img.Pix), img.Height*img.Width*img.Channels)
	}
	return nil
}
