package rundir

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/sgt-dev/sgt/atomicfile"
)

// filterNormsHeader is the header line of filter_norms.csv (long format:
// one row per step, layer and filter).
const filterNormsHeader = "step,layer,filter,norm"

// LayerNorms holds the weight L2 norm of every filter (output channel) of
// one convolution layer.
type LayerNorms struct {
	// Layer is the scope of the layer's kernel, without the leading "/"
	// (e.g. "resnet/stage1/block1/conv1").
	Layer string
	// Norms holds one norm per filter.
	Norms []float64
}

// AppendFilterNorms appends the norms at step to dir's filter_norms.csv,
// writing the header first when the file is new. It is the one file sgt
// appends to instead of replacing: a kill during the append can leave a
// last line cut short, which TrimFilterNorms drops when the run resumes.
func AppendFilterNorms(dir string, step int, layers []LayerNorms) error {
	path := filepath.Join(dir, FilterNormsFile)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("filter norms: %w", err)
	}
	info, err := f.Stat()
	if err != nil {
		_ = f.Close()
		return fmt.Errorf("filter norms: %w", err)
	}
	w := bufio.NewWriter(f)
	if info.Size() == 0 {
		w.WriteString(filterNormsHeader + "\n")
	}
	prefix := strconv.Itoa(step) + ","
	for _, l := range layers {
		for i, n := range l.Norms {
			w.WriteString(prefix + l.Layer + "," + strconv.Itoa(i) + "," + strconv.FormatFloat(n, 'g', -1, 32) + "\n")
		}
	}
	if err := errors.Join(w.Flush(), f.Sync(), f.Close()); err != nil {
		return fmt.Errorf("filter norms: writing %s: %w", path, err)
	}
	return nil
}

// TrimFilterNorms rewrites dir's filter_norms.csv, if any, keeping the rows
// of steps up to lastStep: those written after the checkpoint a run resumes
// from (and a last line cut short by a kill) are dropped, so that the
// resumed run appends exactly what an uninterrupted one would have.
func TrimFilterNorms(dir string, lastStep int) error {
	path := filepath.Join(dir, FilterNormsFile)
	raw, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("filter norms: %w", err)
	}
	var b bytes.Buffer
	b.WriteString(filterNormsHeader + "\n")
	lines := strings.Split(string(raw), "\n")
	if len(lines) > 0 && lines[0] != filterNormsHeader {
		return fmt.Errorf("filter norms: %s: line 1 is %q, want %q", path, lines[0], filterNormsHeader)
	}
	complete := strings.HasSuffix(string(raw), "\n")
	for i, line := range lines[1:] {
		if line == "" || (!complete && i == len(lines)-2) {
			continue // the end, or a last line cut short
		}
		stepText, _, _ := strings.Cut(line, ",")
		step, err := strconv.Atoi(stepText)
		if err != nil || strings.Count(line, ",") != 3 {
			return fmt.Errorf("filter norms: %s: line %d: malformed row %q", path, i+2, line)
		}
		if step <= lastStep {
			b.WriteString(line + "\n")
		}
	}
	return atomicfile.WriteFile(path, b.Bytes())
}

// FilterNormPoint is one filter's norm at one step.
type FilterNormPoint struct {
	Step int
	Norm float64
}

// FilterNorms is a filter_norms.csv read into memory.
type FilterNorms struct {
	// Layers lists the layers in file order.
	Layers []string
	// Series maps a layer and a filter index to its norms over the steps.
	Series map[string]map[int][]FilterNormPoint
}

// ReadFilterNorms reads dir's filter_norms.csv.
func ReadFilterNorms(dir string) (*FilterNorms, error) {
	path := filepath.Join(dir, FilterNormsFile)
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	cr := csv.NewReader(f)
	cr.FieldsPerRecord = 4
	header, err := cr.Read()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if strings.Join(header, ",") != filterNormsHeader {
		return nil, fmt.Errorf("%s: line 1 is %q, want %q", path, strings.Join(header, ","), filterNormsHeader)
	}
	fn := &FilterNorms{Series: map[string]map[int][]FilterNormPoint{}}
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		line, _ := cr.FieldPos(0)
		step, err1 := strconv.Atoi(rec[0])
		filter, err2 := strconv.Atoi(rec[2])
		norm, err3 := strconv.ParseFloat(rec[3], 64)
		if err := errors.Join(err1, err2, err3); err != nil || step < 0 || filter < 0 || !(norm >= 0) {
			return nil, fmt.Errorf("%s: line %d: malformed row %q", path, line, strings.Join(rec, ","))
		}
		layer := rec[1]
		if fn.Series[layer] == nil {
			fn.Series[layer] = map[int][]FilterNormPoint{}
			fn.Layers = append(fn.Layers, layer)
		}
		fn.Series[layer][filter] = append(fn.Series[layer][filter], FilterNormPoint{Step: step, Norm: norm})
	}
	return fn, nil
}
