package train

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"strconv"
	"strings"

	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"
)

// filterNormsHeader is the header line of filter_norms.csv (long format).
const filterNormsHeader = "step,layer,filter,norm"

// layerNorms holds the weight L2 norm of every filter (output channel) of
// one convolution layer.
type layerNorms struct {
	// layer is the scope of the layer's kernel, without the leading "/"
	// (e.g. "resnet/stage1/block1/conv1").
	layer string
	norms []float64
}

// convFilterNorms computes, on the host from the variables' current values,
// the per-filter L2 norms of every convolution kernel of ctx: the trainable
// rank-4 variables [kernelH, kernelW, inChannels, outChannels], one norm per
// output channel, in the context's variable order.
func convFilterNorms(ctx *context.Context) ([]layerNorms, error) {
	var out []layerNorms
	for v := range ctx.IterVariables() {
		dims := v.Shape().Dimensions
		if !v.Trainable || len(dims) != 4 {
			continue
		}
		value, err := v.Value()
		if err != nil {
			return nil, fmt.Errorf("filter norms: variable %s: %w", v.ScopeAndName(), err)
		}
		filters := dims[3]
		sums := make([]float64, filters)
		var accessErr error
		err = value.ConstFlatData(func(flat any) {
			switch x := flat.(type) {
			case []float32:
				for i, w := range x {
					sums[i%filters] += float64(w) * float64(w)
				}
			case []float64:
				for i, w := range x {
					sums[i%filters] += w * w
				}
			default:
				accessErr = fmt.Errorf("filter norms: variable %s has dtype %s, want a float", v.ScopeAndName(), v.Shape().DType)
			}
		})
		if err = errors.Join(err, accessErr); err != nil {
			return nil, err
		}
		for i := range sums {
			sums[i] = math.Sqrt(sums[i])
		}
		out = append(out, layerNorms{layer: strings.TrimPrefix(v.Scope(), "/"), norms: sums})
	}
	return out, nil
}

// countBelow returns how many filters have a norm below threshold, and how
// many filters there are.
func countBelow(layers []layerNorms, threshold float64) (below, total int) {
	for _, l := range layers {
		for _, n := range l.norms {
			if n < threshold {
				below++
			}
		}
		total += len(l.norms)
	}
	return below, total
}

// appendFilterNorms appends the norms at step to the filter_norms.csv at
// path, writing the header first when the file is new.
func appendFilterNorms(path string, step int, layers []layerNorms) error {
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
		for i, n := range l.norms {
			w.WriteString(prefix + l.layer + "," + strconv.Itoa(i) + "," + strconv.FormatFloat(n, 'g', -1, 32) + "\n")
		}
	}
	err = errors.Join(w.Flush(), f.Sync(), f.Close())
	if err != nil {
		return fmt.Errorf("filter norms: writing %s: %w", path, err)
	}
	return nil
}

// trimFilterNorms rewrites the filter_norms.csv at path, if any, keeping the
// rows of steps up to lastStep: those written after the checkpoint a run
// resumes from (and a last line cut short by a kill) are dropped, so that
// the resumed run appends exactly what an uninterrupted one would have.
func trimFilterNorms(path string, lastStep int) error {
	raw, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
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
	return WriteFileAtomic(path, b.Bytes())
}

// accumulate adds the values of the float tensor t (freeing it) to sums,
// which it creates on first use, and returns sums.
func accumulate(sums []float64, t *tensors.Tensor) ([]float64, error) {
	defer func() { _ = t.FinalizeAll() }()
	size := t.Shape().Size()
	if sums == nil {
		sums = make([]float64, size)
	}
	if len(sums) != size {
		return nil, fmt.Errorf("accumulating %s into %d sums", t.Shape(), len(sums))
	}
	var typeErr error
	err := t.ConstFlatData(func(flat any) {
		switch x := flat.(type) {
		case []float32:
			for i, v := range x {
				sums[i] += float64(v)
			}
		case []float64:
			for i, v := range x {
				sums[i] += v
			}
		default:
			typeErr = fmt.Errorf("accumulating %s: not a float tensor", t.Shape())
		}
	})
	if err = errors.Join(err, typeErr); err != nil {
		return nil, err
	}
	return sums, nil
}
