package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"

	"github.com/sgt-dev/sgt"
)

func init() {
	register("grad", "tampered probabilities, gradient, loss and thresholds for JSON logits on stdin", runGrad)
}

// gradInput is the JSON object sgt grad reads. Every value is kept raw so that
// each number can be checked (type, overflow, integrality) with an error that
// names it.
type gradInput struct {
	Alpha          json.RawMessage `json:"alpha"`
	LabelSmoothing json.RawMessage `json:"label_smoothing"`
	Logits         json.RawMessage `json:"logits"`
	Labels         json.RawMessage `json:"labels"`
}

// gradOutput is the JSON object sgt grad writes.
type gradOutput struct {
	Probs               [][]float64 `json:"probs"`
	TamperedProbs       [][]float64 `json:"tampered_probs"`
	Grad                [][]float64 `json:"grad"`
	Loss                float64     `json:"loss"`
	StationaryThreshold []float64   `json:"stationary_threshold"`
}

// runGrad implements "sgt grad": one JSON object in on stdin, one out on
// stdout, everything computed in float64 by sgt.Compute.
func runGrad(_ context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := newFlagSet("grad", stderr)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `Usage: sgt grad < input.json

Reads one JSON object on stdin:
  {"alpha": 0.3, "label_smoothing": 0.1, "logits": [[...], ...], "labels": [3, 1, ...]}
(label_smoothing is optional, default 0) and writes one JSON object on stdout:
  {"probs": [[...]], "tampered_probs": [[...]], "grad": [[...]], "loss": 1.23,
   "stationary_threshold": [...]}
where probs = softmax(z), tampered_probs = softmax(alpha*z), grad = (p' - q)/N
with q the (label-smoothed) one-hot targets, loss the mean cross-entropy, and
stationary_threshold one value per row (null when alpha = 1).
`)
	}
	if err := parseFlags(fs, args, false); err != nil {
		return err
	}
	in, err := readGradInput(stdin)
	if err != nil {
		return usageError{err}
	}
	res, err := sgt.Compute(in.logits, in.labels, in.alpha, in.eps)
	if err != nil {
		return usageError{err}
	}
	out := gradOutput{
		Probs:               res.Probs,
		TamperedProbs:       res.TamperedProbs,
		Grad:                res.Grad,
		Loss:                res.Loss,
		StationaryThreshold: res.StationaryThreshold,
	}
	enc := json.NewEncoder(stdout)
	if err := enc.Encode(out); err != nil {
		return fmt.Errorf("writing output: %w", err)
	}
	return nil
}

// parsedGradInput is gradInput after validation.
type parsedGradInput struct {
	alpha, eps float64
	logits     [][]float64
	labels     []int
}

// readGradInput decodes and checks the single JSON object on r.
func readGradInput(r io.Reader) (*parsedGradInput, error) {
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	var raw gradInput
	if err := dec.Decode(&raw); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errors.New("reading input: empty input, want one JSON object")
		}
		var typeErr *json.UnmarshalTypeError
		if errors.As(err, &typeErr) && typeErr.Field == "" {
			return nil, fmt.Errorf("reading input: want a JSON object, got %s", typeErr.Value)
		}
		return nil, fmt.Errorf("reading input: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("reading input: trailing data after the JSON object")
	}
	in := &parsedGradInput{}
	var err error
	if raw.Alpha == nil {
		return nil, errors.New("missing field \"alpha\"")
	}
	if in.alpha, err = parseNumber(raw.Alpha, "alpha"); err != nil {
		return nil, err
	}
	if raw.LabelSmoothing != nil {
		if in.eps, err = parseNumber(raw.LabelSmoothing, "label_smoothing"); err != nil {
			return nil, err
		}
	}
	if raw.Logits == nil {
		return nil, errors.New("missing field \"logits\"")
	}
	rows, err := parseArray(raw.Logits, "logits")
	if err != nil {
		return nil, err
	}
	in.logits = make([][]float64, len(rows))
	for i, rowRaw := range rows {
		name := fmt.Sprintf("logits[%d]", i)
		vals, err := parseArray(rowRaw, name)
		if err != nil {
			return nil, err
		}
		row := make([]float64, len(vals))
		for j, v := range vals {
			if row[j], err = parseNumber(v, fmt.Sprintf("%s[%d]", name, j)); err != nil {
				return nil, err
			}
		}
		in.logits[i] = row
	}
	if raw.Labels == nil {
		return nil, errors.New("missing field \"labels\"")
	}
	labels, err := parseArray(raw.Labels, "labels")
	if err != nil {
		return nil, err
	}
	in.labels = make([]int, len(labels))
	for i, v := range labels {
		name := fmt.Sprintf("labels[%d]", i)
		f, err := parseNumber(v, name)
		if err != nil {
			return nil, err
		}
		if f != math.Trunc(f) {
			return nil, fmt.Errorf("%s = %s: not an integer class index", name, bytes.TrimSpace(v))
		}
		if math.Abs(f) > 1<<53 {
			return nil, fmt.Errorf("%s = %s: out of range", name, bytes.TrimSpace(v))
		}
		in.labels[i] = int(f)
	}
	return in, nil
}

// parseNumber parses a raw JSON value that must be a finite number.
func parseNumber(raw json.RawMessage, name string) (float64, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || !(raw[0] == '-' || (raw[0] >= '0' && raw[0] <= '9')) {
		return 0, fmt.Errorf("%s: want a number, got %s", name, describeJSON(raw))
	}
	f, err := strconv.ParseFloat(string(raw), 64)
	if err != nil {
		if errors.Is(err, strconv.ErrRange) {
			return 0, fmt.Errorf("%s = %s: overflows float64", name, raw)
		}
		return 0, fmt.Errorf("%s = %s: %w", name, raw, err)
	}
	return f, nil
}

// parseArray splits a raw JSON value that must be an array into its elements.
func parseArray(raw json.RawMessage, name string) ([]json.RawMessage, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || raw[0] != '[' {
		return nil, fmt.Errorf("%s: want an array, got %s", name, describeJSON(raw))
	}
	var elems []json.RawMessage
	if err := json.Unmarshal(raw, &elems); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return elems, nil
}

// describeJSON names the kind of a raw JSON value for error messages.
func describeJSON(raw json.RawMessage) string {
	if len(raw) == 0 {
		return "nothing"
	}
	switch raw[0] {
	case '"':
		return "a string"
	case '{':
		return "an object"
	case '[':
		return "an array"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	default:
		return string(raw)
	}
}
