package data

import (
	"fmt"
	"math"
)

// Transform turns one source image into the float32 pixels of one batch
// example: geometric augmentation or resizing. Transforms write pixel values
// in [0, 255] (HWC); the batcher normalises them afterwards. Apply must be
// deterministic given rng: Batcher and Loader seed rng from the batch seed,
// the epoch and the example's index in the source, so results do not depend
// on how many goroutines do the work.
type Transform interface {
	// OutputShape returns the output height and width for source images of
	// the given shape (height and width 0 mean images of varying size), or an
	// error if the transform cannot handle them.
	OutputShape(height, width, channels int) (outHeight, outWidth int, err error)
	// Apply writes the transformed image (outHeight*outWidth*src.Channels
	// values) into dst. scratch is per-goroutine working memory.
	Apply(dst []float32, src Image, rng *RNG, scratch *Scratch)
}

// Identity passes images through unchanged (the evaluation transform for
// fixed-size datasets such as MNIST and CIFAR).
type Identity struct{}

// OutputShape implements Transform; images must have a fixed size.
func (Identity) OutputShape(height, width, channels int) (int, int, error) {
	if height <= 0 || width <= 0 {
		return 0, 0, fmt.Errorf("identity transform needs images of one fixed size; use Resize or ResizeCenterCrop")
	}
	return height, width, nil
}

// Apply implements Transform.
func (Identity) Apply(dst []float32, src Image, _ *RNG, _ *Scratch) {
	for i, v := range src.Pix {
		dst[i] = float32(v)
	}
}

// PadCropFlip is the standard CIFAR training augmentation: pad the image with
// Pad pixels of zeros (black) on every side, take a random crop of the
// original size, and, if Flip, mirror it left to right with probability 1/2.
type PadCropFlip struct {
	// Pad is the zero padding on each side (4 for CIFAR).
	Pad int
	// Flip enables random horizontal flips.
	Flip bool
}

// CIFARAugmentation returns the usual CIFAR training transform: 4-pixel zero
// padding, random 32x32 crop, random horizontal flip.
func CIFARAugmentation() PadCropFlip { return PadCropFlip{Pad: 4, Flip: true} }

// OutputShape implements Transform; the output has the input's size.
func (t PadCropFlip) OutputShape(height, width, channels int) (int, int, error) {
	if t.Pad < 0 {
		return 0, 0, fmt.Errorf("pad-crop-flip: padding %d is negative", t.Pad)
	}
	if height <= 0 || width <= 0 {
		return 0, 0, fmt.Errorf("pad-crop-flip needs images of one fixed size")
	}
	return height, width, nil
}

// Apply implements Transform. It draws the vertical offset, the horizontal
// offset (each uniform in [0, 2*Pad]) and then, if Flip, the flip.
func (t PadCropFlip) Apply(dst []float32, src Image, rng *RNG, _ *Scratch) {
	h, w, c := src.Height, src.Width, src.Channels
	dy := rng.Intn(2*t.Pad+1) - t.Pad
	dx := rng.Intn(2*t.Pad+1) - t.Pad
	flip := t.Flip && rng.Bool()
	for y := range h {
		out := dst[y*w*c : (y+1)*w*c]
		sy := y + dy
		if sy < 0 || sy >= h {
			clear(out)
			continue
		}
		row := src.Pix[sy*w*c : (sy+1)*w*c]
		for x := range w {
			col := x
			if flip {
				col = w - 1 - x
			}
			o := out[col*c : col*c+c]
			sx := x + dx
			if sx < 0 || sx >= w {
				clear(o)
				continue
			}
			for ch := range o {
				o[ch] = float32(row[sx*c+ch])
			}
		}
	}
}

// RandomResizedCrop is the ImageNet-style training augmentation: crop a
// random region covering a fraction of the area drawn uniformly from
// [MinScale, MaxScale] with aspect ratio (width/height) log-uniform in
// [MinRatio, MaxRatio], resize it bilinearly to Size x Size, and, if Flip,
// mirror it with probability 1/2. Zero fields take the usual values: scale
// 0.08 to 1 and ratio 3/4 to 4/3. After 10 failed draws it falls back to a
// centre crop of the whole image with the ratio clamped into range.
type RandomResizedCrop struct {
	// Size is the output height and width.
	Size int
	// MinScale and MaxScale bound the crop's fraction of the image area.
	MinScale, MaxScale float64
	// MinRatio and MaxRatio bound the crop's aspect ratio (width/height).
	MinRatio, MaxRatio float64
	// Flip enables random horizontal flips.
	Flip bool
}

// params returns the crop parameters with defaults filled in.
func (t RandomResizedCrop) params() (s0, s1, r0, r1 float64) {
	s0, s1, r0, r1 = t.MinScale, t.MaxScale, t.MinRatio, t.MaxRatio
	if s0 == 0 {
		s0 = 0.08
	}
	if s1 == 0 {
		s1 = 1
	}
	if r0 == 0 {
		r0 = 3.0 / 4
	}
	if r1 == 0 {
		r1 = 4.0 / 3
	}
	return s0, s1, r0, r1
}

// OutputShape implements Transform; the output is Size x Size.
func (t RandomResizedCrop) OutputShape(height, width, channels int) (int, int, error) {
	if t.Size <= 0 {
		return 0, 0, fmt.Errorf("random-resized-crop: size %d must be positive", t.Size)
	}
	s0, s1, r0, r1 := t.params()
	if !(0 < s0 && s0 <= s1 && s1 <= 1) {
		return 0, 0, fmt.Errorf("random-resized-crop: scale range [%v, %v] must satisfy 0 < min <= max <= 1", s0, s1)
	}
	if !(0 < r0 && r0 <= r1) || math.IsInf(r1, 0) {
		return 0, 0, fmt.Errorf("random-resized-crop: ratio range [%v, %v] must satisfy 0 < min <= max < inf", r0, r1)
	}
	return t.Size, t.Size, nil
}

// crop draws the crop rectangle (top, left, height, width) for an h x w image.
func (t RandomResizedCrop) crop(h, w int, rng *RNG) (top, left, ch, cw int) {
	s0, s1, r0, r1 := t.params()
	area := float64(h * w)
	logR0, logR1 := math.Log(r0), math.Log(r1)
	for range 10 {
		target := area * (s0 + (s1-s0)*rng.Float64())
		ratio := math.Exp(logR0 + (logR1-logR0)*rng.Float64())
		cw = int(math.RoundToEven(math.Sqrt(target * ratio)))
		ch = int(math.RoundToEven(math.Sqrt(target / ratio)))
		if cw > 0 && cw <= w && ch > 0 && ch <= h {
			top = rng.Intn(h - ch + 1)
			left = rng.Intn(w - cw + 1)
			return top, left, ch, cw
		}
	}
	ratio := float64(w) / float64(h)
	switch {
	case ratio < r0:
		cw = w
		ch = max(1, int(math.RoundToEven(float64(cw)/r0)))
	case ratio > r1:
		ch = h
		cw = max(1, int(math.RoundToEven(float64(ch)*r1)))
	default:
		ch, cw = h, w
	}
	return (h - ch) / 2, (w - cw) / 2, ch, cw
}

// Apply implements Transform. It draws the crop, then the flip.
func (t RandomResizedCrop) Apply(dst []float32, src Image, rng *RNG, s *Scratch) {
	t.applyNormalized(dst, src, rng, s, nil)
}

// applyNormalized implements normalizingTransform.
func (t RandomResizedCrop) applyNormalized(dst []float32, src Image, rng *RNG, s *Scratch, norm *affine) {
	top, left, ch, cw := t.crop(src.Height, src.Width, rng)
	flip := t.Flip && rng.Bool()
	sampleBilinear(dst, t.Size, t.Size, src, float64(top), float64(left),
		float64(ch)/float64(t.Size), float64(cw)/float64(t.Size),
		window{top, top + ch, left, left + cw}, flip, s, norm)
}

// ResizeCenterCrop is the ImageNet-style evaluation transform: resize the
// image bilinearly so that its shorter side is Resize (keeping the aspect
// ratio), then take the central Size x Size crop. Resize 0 means
// round(Size*256/224), the customary 256 for 224.
type ResizeCenterCrop struct {
	// Resize is the length of the shorter side after resizing.
	Resize int
	// Size is the output height and width.
	Size int
}

// resize returns Resize with its default filled in.
func (t ResizeCenterCrop) resize() int {
	if t.Resize == 0 {
		return int(math.RoundToEven(float64(t.Size) * 256 / 224))
	}
	return t.Resize
}

// OutputShape implements Transform; the output is Size x Size.
func (t ResizeCenterCrop) OutputShape(height, width, channels int) (int, int, error) {
	if t.Size <= 0 {
		return 0, 0, fmt.Errorf("resize-center-crop: size %d must be positive", t.Size)
	}
	if r := t.resize(); r < t.Size {
		return 0, 0, fmt.Errorf("resize-center-crop: resize %d is smaller than the crop size %d", r, t.Size)
	}
	return t.Size, t.Size, nil
}

// Apply implements Transform; it draws no random numbers.
func (t ResizeCenterCrop) Apply(dst []float32, src Image, rng *RNG, s *Scratch) {
	t.applyNormalized(dst, src, rng, s, nil)
}

// applyNormalized implements normalizingTransform.
func (t ResizeCenterCrop) applyNormalized(dst []float32, src Image, _ *RNG, s *Scratch, norm *affine) {
	h, w := src.Height, src.Width
	r := t.resize()
	rh, rw := r, r
	if h <= w {
		rw = max(r, int(float64(r)*float64(w)/float64(h)))
	} else {
		rh = max(r, int(float64(r)*float64(h)/float64(w)))
	}
	top := int(math.RoundToEven(float64(rh-t.Size) / 2))
	left := int(math.RoundToEven(float64(rw-t.Size) / 2))
	scaleY, scaleX := float64(h)/float64(rh), float64(w)/float64(rw)
	// Output pixel (oy, ox) is resized pixel (top+oy, left+ox), whose centre
	// maps to source row (top+oy+0.5)*scaleY - 0.5.
	sampleBilinear(dst, t.Size, t.Size, src, float64(top)*scaleY, float64(left)*scaleX,
		scaleY, scaleX, window{0, h, 0, w}, false, s, norm)
}

// Resize resizes every image bilinearly to Height x Width, ignoring the
// aspect ratio.
type Resize struct {
	// Height and Width are the output size.
	Height, Width int
}

// OutputShape implements Transform.
func (t Resize) OutputShape(height, width, channels int) (int, int, error) {
	if t.Height <= 0 || t.Width <= 0 {
		return 0, 0, fmt.Errorf("resize: size %dx%d must be positive", t.Height, t.Width)
	}
	return t.Height, t.Width, nil
}

// Apply implements Transform; it draws no random numbers.
func (t Resize) Apply(dst []float32, src Image, rng *RNG, s *Scratch) {
	t.applyNormalized(dst, src, rng, s, nil)
}

// applyNormalized implements normalizingTransform.
func (t Resize) applyNormalized(dst []float32, src Image, _ *RNG, s *Scratch, norm *affine) {
	sampleBilinear(dst, t.Height, t.Width, src, 0, 0,
		float64(src.Height)/float64(t.Height), float64(src.Width)/float64(t.Width),
		window{0, src.Height, 0, src.Width}, false, s, norm)
}

// DefaultTransforms returns the customary training and evaluation transforms
// of a dataset: none for MNIST and Fashion-MNIST; PadCropFlip with 4 pixels
// and Identity for CIFAR-10/100; RandomResizedCrop with flips and
// ResizeCenterCrop (resize to size*256/224) for "imagefolder" and
// "imagenet", at size x size (0 means 224). Other names are an error.
func DefaultTransforms(name string, size int) (train, eval Transform, err error) {
	switch name {
	case "mnist", "fashion-mnist":
		return Identity{}, Identity{}, nil
	case "cifar10", "cifar100":
		return CIFARAugmentation(), Identity{}, nil
	case "imagefolder", "imagenet":
		if size < 0 {
			return nil, nil, fmt.Errorf("transforms for %s: image size %d is negative", name, size)
		}
		if size == 0 {
			size = 224
		}
		return RandomResizedCrop{Size: size, Flip: true}, ResizeCenterCrop{Size: size}, nil
	}
	return nil, nil, fmt.Errorf("no default transforms for dataset %q (known: cifar10, cifar100, fashion-mnist, imagefolder, imagenet, mnist)", name)
}
