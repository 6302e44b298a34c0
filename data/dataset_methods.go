package data

import (
	"fmt"
	"math"
)

// Image is an 8-bit image in HWC order (row, column, channel).
type Image struct {
	// Pix holds Height*Width*Channels bytes.
	Pix []byte
	// Height, Width and Channels give the shape of Pix.
	Height, Width, Channels int
}

// Source is a random-access collection of labelled images: an in-memory
// *Dataset, or an *ImageFolder that decodes files on demand. Batcher and
// Loader read examples through it. Implementations must allow concurrent
// calls to Example from several goroutines.
type Source interface {
	// Len returns the number of examples.
	Len() int
	// ClassCount returns the number of classes; labels lie in [0, ClassCount()).
	ClassCount() int
	// Shape returns the shape of every image, or height and width 0 when
	// images differ in size (then a Transform must fix the output size).
	Shape() (height, width, channels int)
	// Example returns image i and its label. The image may alias the
	// source's memory or scratch (which a decoding source uses for the
	// pixels), so callers must not modify it, and it stays valid only until
	// the next call with the same scratch.
	Example(i int, scratch *Scratch) (Image, int32, error)
}

// Len returns the number of examples, N.
func (d *Dataset) Len() int { return d.N }

// Shape returns the height, width and channels of every image.
func (d *Dataset) Shape() (height, width, channels int) { return d.Height, d.Width, d.Channels }

// Image returns the pixels of example i (HWC bytes), sharing the dataset's memory.
func (d *Dataset) Image(i int) []byte {
	size := d.ExampleSize()
	return d.Images[i*size : (i+1)*size : (i+1)*size]
}

// Example implements Source: it returns a view of example i (no copy; scratch
// is unused) and its label.
func (d *Dataset) Example(i int, _ *Scratch) (Image, int32, error) {
	if i < 0 || i >= d.N {
		return Image{}, 0, fmt.Errorf("dataset %s/%s: example %d out of range [0, %d)", d.Name, d.Split, i, d.N)
	}
	return Image{Pix: d.Image(i), Height: d.Height, Width: d.Width, Channels: d.Channels}, d.Labels[i], nil
}

// ClassCount implements Source: it returns NumClasses.
func (d *Dataset) ClassCount() int { return d.NumClasses }

// Validate checks that the dataset is consistent: positive shape, image and
// label lengths matching N, and every label in [0, NumClasses).
func (d *Dataset) Validate() error {
	if d == nil {
		return fmt.Errorf("dataset: nil")
	}
	if d.N < 0 || d.Height <= 0 || d.Width <= 0 || d.Channels <= 0 {
		return fmt.Errorf("dataset %s/%s: bad shape N=%d height=%d width=%d channels=%d", d.Name, d.Split, d.N, d.Height, d.Width, d.Channels)
	}
	if d.NumClasses <= 0 {
		return fmt.Errorf("dataset %s/%s: NumClasses is %d, want > 0", d.Name, d.Split, d.NumClasses)
	}
	if want := d.N * d.ExampleSize(); len(d.Images) != want {
		return fmt.Errorf("dataset %s/%s: %d image bytes, want N*H*W*C = %d*%d*%d*%d = %d", d.Name, d.Split, len(d.Images), d.N, d.Height, d.Width, d.Channels, want)
	}
	if len(d.Labels) != d.N {
		return fmt.Errorf("dataset %s/%s: %d labels for %d examples", d.Name, d.Split, len(d.Labels), d.N)
	}
	for i, l := range d.Labels {
		if l < 0 || int(l) >= d.NumClasses {
			return fmt.Errorf("dataset %s/%s: example %d has label %d outside [0, %d)", d.Name, d.Split, i, l, d.NumClasses)
		}
	}
	return nil
}

// Subset returns a dataset of the first n examples (n is clamped to [0, N]).
// It shares the image and label memory with d.
func (d *Dataset) Subset(n int) *Dataset {
	n = max(0, min(n, d.N))
	s := *d
	s.N = n
	s.Images = d.Images[: n*d.ExampleSize() : n*d.ExampleSize()]
	s.Labels = d.Labels[:n:n]
	s.Source = append([]string(nil), d.Source...)
	return &s
}

// LabelHistogram returns how many examples each class has.
func (d *Dataset) LabelHistogram() []int {
	counts := make([]int, d.NumClasses)
	for _, l := range d.Labels {
		if l >= 0 && int(l) < d.NumClasses {
			counts[l]++
		}
	}
	return counts
}

// Normalization holds per-channel mean and standard deviation of pixel
// values scaled to [0, 1]. Batches hold (x/255 - Mean[c]) / Std[c] for a pixel
// value x in channel c. A single value applies to every channel; the zero
// value (no values) means mean 0 and std 1, i.e. plain x/255.
type Normalization struct {
	// Mean and Std hold one value per channel, or one for all channels.
	Mean, Std []float32
}

// defaultNormalizations are the customary statistics of each dataset's
// training split (pixel values scaled to [0, 1]).
var defaultNormalizations = map[string]Normalization{
	"mnist":         {Mean: []float32{0.1307}, Std: []float32{0.3081}},
	"fashion-mnist": {Mean: []float32{0.2860}, Std: []float32{0.3530}},
	"cifar10":       {Mean: []float32{0.4914, 0.4822, 0.4465}, Std: []float32{0.2470, 0.2435, 0.2616}},
	"cifar100":      {Mean: []float32{0.5071, 0.4865, 0.4409}, Std: []float32{0.2673, 0.2564, 0.2762}},
	"imagenet":      {Mean: []float32{0.485, 0.456, 0.406}, Std: []float32{0.229, 0.224, 0.225}},
	"imagefolder":   {Mean: []float32{0.485, 0.456, 0.406}, Std: []float32{0.229, 0.224, 0.225}},
}

// DefaultNormalization returns the customary normalisation of a dataset
// ("mnist", "fashion-mnist", "cifar10", "cifar100"; "imagenet" and
// "imagefolder" get the ImageNet statistics). ok is false for other names;
// then use (*Dataset).ComputeNormalization.
func DefaultNormalization(name string) (n Normalization, ok bool) {
	def, ok := defaultNormalizations[name]
	if !ok {
		return Normalization{}, false
	}
	return Normalization{Mean: append([]float32(nil), def.Mean...), Std: append([]float32(nil), def.Std...)}, true
}

// ComputeNormalization returns the per-channel mean and (population)
// standard deviation of the dataset's pixels scaled to [0, 1]. A channel with
// zero spread gets std 1, so that normalising never divides by zero.
func (d *Dataset) ComputeNormalization() Normalization {
	c := d.Channels
	sum := make([]uint64, c)
	sumSq := make([]uint64, c)
	for i, v := range d.Images {
		ch := i % c
		sum[ch] += uint64(v)
		sumSq[ch] += uint64(v) * uint64(v)
	}
	count := float64(len(d.Images) / max(c, 1))
	n := Normalization{Mean: make([]float32, c), Std: make([]float32, c)}
	for ch := range c {
		if count == 0 {
			n.Std[ch] = 1
			continue
		}
		mean := float64(sum[ch]) / count
		variance := float64(sumSq[ch])/count - mean*mean
		std := math.Sqrt(max(variance, 0))
		n.Mean[ch] = float32(mean / 255)
		n.Std[ch] = float32(std / 255)
		if n.Std[ch] == 0 {
			n.Std[ch] = 1
		}
	}
	return n
}

// affine returns per-channel scale and bias with x*scale + bias equal to
// (x/255 - mean)/std, after checking that the normalisation fits the
// channel count.
func (n Normalization) affine(channels int) (scale, bias []float32, err error) {
	if len(n.Mean) != len(n.Std) {
		return nil, nil, fmt.Errorf("normalization: %d means but %d standard deviations", len(n.Mean), len(n.Std))
	}
	if len(n.Mean) > 1 && len(n.Mean) != channels {
		return nil, nil, fmt.Errorf("normalization: %d channel values for %d-channel images", len(n.Mean), channels)
	}
	scale = make([]float32, channels)
	bias = make([]float32, channels)
	for c := range channels {
		mean, std := float32(0), float32(1)
		if len(n.Mean) == 1 {
			mean, std = n.Mean[0], n.Std[0]
		} else if len(n.Mean) == channels {
			mean, std = n.Mean[c], n.Std[c]
		}
		if !(std > 0) || math.IsInf(float64(std), 0) || math.IsNaN(float64(mean)) || math.IsInf(float64(mean), 0) {
			return nil, nil, fmt.Errorf("normalization: channel %d has mean %v and std %v; std must be positive and both finite", c, mean, std)
		}
		scale[c] = 1 / (255 * std)
		bias[c] = -mean / std
	}
	return scale, bias, nil
}
