package train

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	"github.com/gomlx/gomlx/pkg/core/shapes"
	"github.com/gomlx/gomlx/pkg/core/tensors"
)

// checkpointDir is the subdirectory of a run directory holding checkpoints.
const checkpointDir = "checkpoints"

// checkpointMagic opens every checkpoint file.
const checkpointMagic = "SGTCKPT1"

// checkpointVar describes one variable stored in a checkpoint.
type checkpointVar struct {
	Scope     string `json:"scope"`
	Name      string `json:"name"`
	DType     string `json:"dtype"`
	Dims      []int  `json:"dims"`
	Trainable bool   `json:"trainable"`
	Offset    int    `json:"offset"`
	Bytes     int    `json:"bytes"`
}

// checkpointHeader is the JSON header of a checkpoint: the run state at the
// end of an epoch and the layout of the variables' bytes that follow it.
type checkpointHeader struct {
	Epoch     int             `json:"epoch"`
	Step      int             `json:"step"`
	Seconds   float64         `json:"seconds"`
	BestAcc   float64         `json:"best_acc"`
	BestEpoch int             `json:"best_epoch"`
	History   []EpochMetrics  `json:"history"`
	Config    Config          `json:"config"`
	Variables []checkpointVar `json:"variables"`
}

// checkpointName returns the file name of the checkpoint after epoch.
func checkpointName(epoch int) string { return fmt.Sprintf("epoch-%04d.ckpt", epoch) }

// checkpointEpoch parses a checkpoint file name; ok is false for other files.
func checkpointEpoch(name string) (epoch int, ok bool) {
	num, found := strings.CutPrefix(name, "epoch-")
	if !found {
		return 0, false
	}
	num, found = strings.CutSuffix(num, ".ckpt")
	if !found {
		return 0, false
	}
	e, err := strconv.Atoi(num)
	return e, err == nil && e > 0
}

// encodeCheckpoint serialises the run state and every variable of the
// context (weights, optimizer state, batch-norm statistics, the random
// number generator's state): magic, header length (uint64 little endian),
// JSON header, the variables' raw bytes, and a CRC-32 of all that precedes.
func (t *trainer) encodeCheckpoint(seconds float64) ([]byte, error) {
	h := checkpointHeader{
		Epoch: t.epoch, Step: t.step, Seconds: seconds, BestAcc: t.bestAcc, BestEpoch: t.bestEpoch,
		History: t.history, Config: t.cfg,
	}
	var payload bytes.Buffer
	for v := range t.ctx.IterVariables() {
		value, err := v.Value()
		if err != nil {
			return nil, fmt.Errorf("checkpoint: variable %s: %w", v.ScopeAndName(), err)
		}
		cv := checkpointVar{
			Scope: v.Scope(), Name: v.Name(), DType: v.Shape().DType.String(),
			Dims: slices.Clone(v.Shape().Dimensions), Trainable: v.Trainable, Offset: payload.Len(),
		}
		if err := value.ConstBytes(func(b []byte) { payload.Write(b) }); err != nil {
			return nil, fmt.Errorf("checkpoint: variable %s: %w", v.ScopeAndName(), err)
		}
		cv.Bytes = payload.Len() - cv.Offset
		h.Variables = append(h.Variables, cv)
	}
	header, err := json.Marshal(h)
	if err != nil {
		return nil, fmt.Errorf("checkpoint: encoding header: %w", err)
	}
	var out bytes.Buffer
	out.WriteString(checkpointMagic)
	_ = binary.Write(&out, binary.LittleEndian, uint64(len(header)))
	out.Write(header)
	out.Write(payload.Bytes())
	_ = binary.Write(&out, binary.LittleEndian, crc32.ChecksumIEEE(out.Bytes()))
	return out.Bytes(), nil
}

// decodeCheckpoint checks a checkpoint file's framing and checksum and
// returns its header and variable bytes.
func decodeCheckpoint(path string) (*checkpointHeader, []byte, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("reading checkpoint: %w", err)
	}
	bad := func(why string) error { return fmt.Errorf("checkpoint %s: %s", path, why) }
	if len(raw) < len(checkpointMagic)+12 || string(raw[:len(checkpointMagic)]) != checkpointMagic {
		return nil, nil, bad("not a checkpoint file")
	}
	body, sum := raw[:len(raw)-4], binary.LittleEndian.Uint32(raw[len(raw)-4:])
	if crc32.ChecksumIEEE(body) != sum {
		return nil, nil, bad("checksum mismatch (file damaged)")
	}
	rest := body[len(checkpointMagic):]
	n := binary.LittleEndian.Uint64(rest[:8])
	rest = rest[8:]
	if n > uint64(len(rest)) {
		return nil, nil, bad("truncated header")
	}
	var h checkpointHeader
	if err := json.Unmarshal(rest[:n], &h); err != nil {
		return nil, nil, fmt.Errorf("checkpoint %s: header: %w", path, err)
	}
	payload := rest[n:]
	for _, v := range h.Variables {
		if v.Offset < 0 || v.Bytes < 0 || v.Offset+v.Bytes > len(payload) {
			return nil, nil, bad(fmt.Sprintf("variable %s/%s lies outside the file", v.Scope, v.Name))
		}
	}
	return &h, payload, nil
}

// saveCheckpoint writes the checkpoint of the epoch just completed and
// prunes old ones, keeping the newest KeepCheckpoints and the best epoch's.
func (t *trainer) saveCheckpoint(seconds float64) error {
	keep := t.opts.KeepCheckpoints
	if keep < 0 {
		return nil
	}
	keep = max(keep, 1)
	dir := filepath.Join(t.opts.Out, checkpointDir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("creating checkpoint directory: %w", err)
	}
	var blob []byte
	if err := graphResult("checkpoint", func() (err error) {
		blob, err = t.encodeCheckpoint(seconds)
		return err
	}); err != nil {
		return err
	}
	if err := WriteFileAtomic(filepath.Join(dir, checkpointName(t.epoch)), blob); err != nil {
		return err
	}
	epochs, err := listCheckpoints(dir)
	if err != nil {
		return err
	}
	for i, e := range epochs {
		if i < len(epochs)-keep && e != t.bestEpoch {
			if err := os.Remove(filepath.Join(dir, checkpointName(e))); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("pruning checkpoints: %w", err)
			}
		}
	}
	return nil
}

// listCheckpoints returns the epochs that have a checkpoint in dir, ascending.
func listCheckpoints(dir string) ([]int, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("listing checkpoints: %w", err)
	}
	var epochs []int
	for _, e := range entries {
		if n, ok := checkpointEpoch(e.Name()); ok && e.Type().IsRegular() {
			epochs = append(epochs, n)
		}
	}
	sort.Ints(epochs)
	return epochs, nil
}

// readRunRecord reads config.json of a run directory.
func readRunRecord(dir string) (*RunRecord, error) {
	state, err := InspectRunDir(dir)
	if err != nil {
		return nil, err
	}
	switch state {
	case RunNone:
		return nil, &FieldError{Field: "resume", Err: fmt.Errorf("%s holds no run to resume", dir)}
	case RunFinished:
		return nil, &FieldError{Field: "resume", Err: fmt.Errorf("%s: %w; nothing to resume", dir, ErrFinishedRun)}
	}
	raw, err := os.ReadFile(filepath.Join(dir, ConfigFile))
	if err != nil {
		return nil, fmt.Errorf("resuming: %w", err)
	}
	var rec RunRecord
	if err := json.Unmarshal(raw, &rec); err != nil {
		return nil, fmt.Errorf("resuming: %s: %w", filepath.Join(dir, ConfigFile), err)
	}
	return &rec, nil
}

// restoreLatest loads the newest checkpoint of the run directory into the
// trainer. With no checkpoint yet (killed during the first epoch) the run
// starts over from its seed, which gives the same result.
func (t *trainer) restoreLatest() error {
	epochs, err := listCheckpoints(filepath.Join(t.opts.Out, checkpointDir))
	if err != nil {
		return err
	}
	if len(epochs) == 0 {
		if err := trimFilterNorms(filepath.Join(t.opts.Out, FilterNormsFile), -1); err != nil {
			return err
		}
		return writeJSONAtomic(filepath.Join(t.opts.Out, ConfigFile), t.record)
	}
	path := filepath.Join(t.opts.Out, checkpointDir, checkpointName(epochs[len(epochs)-1]))
	h, payload, err := decodeCheckpoint(path)
	if err != nil {
		return err
	}
	a, _ := json.Marshal(h.Config)
	b, _ := json.Marshal(t.cfg)
	if !bytes.Equal(a, b) {
		return fmt.Errorf("checkpoint %s was written with a different configuration than %s", path, ConfigFile)
	}
	if h.Epoch < 1 || h.Epoch > t.cfg.Epochs || len(h.History) != h.Epoch {
		return fmt.Errorf("checkpoint %s: inconsistent run state (epoch %d, %d history rows)", path, h.Epoch, len(h.History))
	}
	// Create the variables with their saved values before any graph is
	// built: building then reuses them instead of initialising new ones.
	t.restored = make(map[string]bool, len(h.Variables))
	for _, cv := range h.Variables {
		dtype, err := dtypes.DTypeString(cv.DType)
		if err != nil {
			return fmt.Errorf("checkpoint %s: variable %s/%s: %w", path, cv.Scope, cv.Name, err)
		}
		value := tensors.FromShape(shapes.Make(dtype, cv.Dims...))
		var sizeErr error
		if err := value.MutableBytes(func(dst []byte) {
			if len(dst) != cv.Bytes {
				sizeErr = fmt.Errorf("checkpoint %s: variable %s/%s has %d bytes, want %d", path, cv.Scope, cv.Name, cv.Bytes, len(dst))
				return
			}
			copy(dst, payload[cv.Offset:cv.Offset+cv.Bytes])
		}); err != nil {
			return fmt.Errorf("restoring %s/%s: %w", cv.Scope, cv.Name, err)
		}
		if sizeErr != nil {
			return sizeErr
		}
		if err := graphResult("restoring "+cv.Scope+"/"+cv.Name, func() error {
			v := t.ctx.GetVariableByScopeAndName(cv.Scope, cv.Name)
			if v == nil {
				v = t.ctx.InAbsPath(cv.Scope).Checked(false).VariableWithValue(cv.Name, value)
			} else if !v.Shape().Equal(value.Shape()) {
				return fmt.Errorf("variable has shape %s, checkpoint has %s", v.Shape(), value.Shape())
			} else if err := v.SetValue(value); err != nil {
				return err
			}
			v.SetTrainable(cv.Trainable)
			t.restored[v.ScopeAndName()] = true
			return nil
		}); err != nil {
			return fmt.Errorf("checkpoint %s: %w", path, err)
		}
	}
	t.epoch, t.step = h.Epoch, h.Step
	t.history = slices.Clone(h.History)
	t.bestAcc, t.bestEpoch = h.BestAcc, h.BestEpoch
	t.priorSeconds = h.Seconds
	// Bring metrics.csv and filter_norms.csv back in line with the
	// checkpoint (a kill after the checkpoint may have left more rows).
	if err := trimFilterNorms(filepath.Join(t.opts.Out, FilterNormsFile), t.step); err != nil {
		return err
	}
	return WriteFileAtomic(filepath.Join(t.opts.Out, MetricsFile), formatMetricsCSV(t.history))
}

// checkRestored verifies, after the first step of a resumed session, that
// the model used exactly the variables of the checkpoint: a variable that
// was initialised afresh instead would silently change the run.
func (t *trainer) checkRestored() error {
	if t.restored == nil {
		return nil
	}
	for v := range t.ctx.IterVariables() {
		if !t.restored[v.ScopeAndName()] {
			return fmt.Errorf("resuming: the checkpoint lacks variable %s of model %s", v.ScopeAndName(), t.cfg.Model)
		}
	}
	t.restored = nil
	return nil
}
