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
// the output is mirrored left to right.
func sampleBilinear(dst []float32, oh, ow int, src Image, top, left, scaleY, scaleX float64, clip window, flip bool, s *Scratch) {
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
		x0s[col], x1s[col], wxs[col] = int32(a), int32(b), w
	}
	rowStride := src.Width * c
	for oy := range oh {
		a, b, wy := bilinearTaps(top+(float64(oy)+0.5)*scaleY-0.5, clip.y0, clip.y1)
		rowA := src.Pix[a*rowStride : (a+1)*rowStride]
		rowB := src.Pix[b*rowStride : (b+1)*rowStride]
		out := dst[oy*ow*c : (oy+1)*ow*c]
		for ox := range ow {
			xa, xb, wx := int(x0s[ox])*c, int(x1s[ox])*c, wxs[ox]
			o := out[ox*c : ox*c+c]
			for ch := range o {
				ta := float32(rowA[xa+ch]) + wx*(float32(rowA[xb+ch])-float32(rowA[xa+ch]))
				tb := float32(rowB[xa+ch]) + wx*(float32(rowB[xb+ch])-float32(rowB[xa+ch]))
				o[ch] = ta + wy*(tb-ta)
			}
		}
	}
}

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
		window{0, src.Height, 0, src.Width}, false, s)
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
