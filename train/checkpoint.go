package train

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"math"
	"math/bits"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	"github.com/gomlx/gomlx/pkg/core/shapes"
	"github.com/gomlx/gomlx/pkg/core/tensors"

	"github.com/sgt-dev/sgt/atomicfile"
	"github.com/sgt-dev/sgt/rundir"
)

// checkpointMagic opens every checkpoint file.
const checkpointMagic = "SGTCKPT1"

// partialCheckpoint is the file name of the checkpoint written when a run
// is interrupted within an epoch; the next epoch checkpoint replaces it.
const partialCheckpoint = "partial.ckpt"

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

// checkpointHeader is the JSON header of a checkpoint: the run state after
// Step optimizer steps (the end of epoch Epoch, or within epoch Epoch+1
// when Partial says so) and the layout of the variables' bytes that follow.
type checkpointHeader struct {
	Epoch     int                   `json:"epoch"`
	Step      int                   `json:"step"`
	Seconds   float64               `json:"seconds"`
	BestAcc   float64               `json:"best_acc"`
	BestEpoch int                   `json:"best_epoch"`
	History   []rundir.EpochMetrics `json:"history"`
	Config    Config                `json:"config"`
	Partial   *epochState           `json:"partial,omitempty"`
	Variables []checkpointVar       `json:"variables"`
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
func (t *trainer) encodeCheckpoint(seconds float64, partial *epochState) ([]byte, error) {
	h := checkpointHeader{
		Epoch: t.epoch, Step: t.steps, Seconds: seconds, BestAcc: t.bestAcc, BestEpoch: t.bestEpoch,
		History: t.history, Config: t.cfg, Partial: partial,
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

// readCheckpoint reads and checks the checkpoint file at path.
func readCheckpoint(path string) (*checkpointHeader, []byte, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("reading checkpoint: %w", err)
	}
	h, payload, err := decodeCheckpoint(raw)
	if err != nil {
		return nil, nil, fmt.Errorf("checkpoint %s: %w", path, err)
	}
	return h, payload, nil
}

// decodeCheckpoint checks a checkpoint's framing, checksum and layout and
// returns its header and variable bytes. Every size in the header is
// checked against the file before anything is allocated from it, so a
// damaged or forged file gives an error, never a panic or a huge
// allocation.
func decodeCheckpoint(raw []byte) (*checkpointHeader, []byte, error) {
	if len(raw) < len(checkpointMagic)+12 || string(raw[:len(checkpointMagic)]) != checkpointMagic {
		return nil, nil, errors.New("not a checkpoint file")
	}
	body, sum := raw[:len(raw)-4], binary.LittleEndian.Uint32(raw[len(raw)-4:])
	if crc32.ChecksumIEEE(body) != sum {
		return nil, nil, errors.New("checksum mismatch (file damaged)")
	}
	rest := body[len(checkpointMagic):]
	n := binary.LittleEndian.Uint64(rest[:8])
	rest = rest[8:]
	if n > uint64(len(rest)) {
		return nil, nil, errors.New("truncated header")
	}
	var h checkpointHeader
	if err := json.Unmarshal(rest[:n], &h); err != nil {
		return nil, nil, fmt.Errorf("header: %w", err)
	}
	payload := rest[n:]
	for _, v := range h.Variables {
		if err := checkVarLayout(v, len(payload)); err != nil {
			return nil, nil, fmt.Errorf("variable %s/%s: %w", v.Scope, v.Name, err)
		}
	}
	if h.Epoch < 0 || h.Step < 0 || len(h.History) != h.Epoch {
		return nil, nil, fmt.Errorf("inconsistent run state (epoch %d, step %d, %d history rows)", h.Epoch, h.Step, len(h.History))
	}
	if p := h.Partial; p != nil && (p.Steps < 1 || p.Steps > h.Step) {
		return nil, nil, fmt.Errorf("inconsistent partial epoch (%d steps of %d)", p.Steps, h.Step)
	}
	return &h, payload, nil
}

// checkVarLayout checks that a variable's bytes lie inside a payload of
// size bytes and match its dtype and dimensions.
func checkVarLayout(v checkpointVar, size int) error {
	if v.Offset < 0 || v.Bytes < 0 || v.Offset > size || v.Bytes > size-v.Offset {
		return errors.New("its bytes lie outside the file")
	}
	dtype, err := dtypes.DTypeString(v.DType)
	if err != nil || dtype == dtypes.InvalidDType || dtype.Size() <= 0 {
		return fmt.Errorf("unknown dtype %q", v.DType)
	}
	elems := uint64(1)
	for _, d := range v.Dims {
		if d < 0 || d > size {
			return fmt.Errorf("bad dimensions %v", v.Dims)
		}
		hi, lo := bits.Mul64(elems, uint64(d))
		if hi != 0 || lo > math.MaxInt32*64 {
			return fmt.Errorf("dimensions %v are too large", v.Dims)
		}
		elems = lo
	}
	if elems*uint64(dtype.Size()) != uint64(v.Bytes) {
		return fmt.Errorf("%d bytes do not hold %s %v", v.Bytes, v.DType, v.Dims)
	}
	return nil
}

// checkpointPath returns the path of a checkpoint file of the run.
func (t *trainer) checkpointPath(name string) string {
	return filepath.Join(t.opts.Out, rundir.CheckpointDir, name)
}

// writeCheckpoint encodes the run state and writes it as the checkpoint
// file name.
func (t *trainer) writeCheckpoint(name string, seconds float64, partial *epochState) error {
	if err := os.MkdirAll(filepath.Join(t.opts.Out, rundir.CheckpointDir), 0o755); err != nil {
		return fmt.Errorf("creating checkpoint directory: %w", err)
	}
	var blob []byte
	if err := graphResult("checkpoint", func() (err error) {
		blob, err = t.encodeCheckpoint(seconds, partial)
		return err
	}); err != nil {
		return err
	}
	return atomicfile.WriteFile(t.checkpointPath(name), blob)
}

// saveCheckpoint writes the checkpoint of the epoch just completed and
// prunes old ones, keeping the newest KeepCheckpoints and the best epoch's;
// a checkpoint of an interrupted epoch is removed.
func (t *trainer) saveCheckpoint(seconds float64) error {
	keep := t.opts.KeepCheckpoints
	if keep < 0 {
		return nil
	}
	if err := t.writeCheckpoint(checkpointName(t.epoch), seconds, nil); err != nil {
		return err
	}
	dir := filepath.Join(t.opts.Out, rundir.CheckpointDir)
	if err := os.Remove(filepath.Join(dir, partialCheckpoint)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("pruning checkpoints: %w", err)
	}
	epochs, err := listCheckpoints(dir)
	if err != nil {
		return err
	}
	for i, e := range epochs {
		if i < len(epochs)-max(keep, 1) && e != t.bestEpoch {
			if err := os.Remove(filepath.Join(dir, checkpointName(e))); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("pruning checkpoints: %w", err)
			}
		}
	}
	return nil
}

// savePartialCheckpoint writes the checkpoint of a run stopped within an
// epoch (t.partial holds the epoch's progress).
func (t *trainer) savePartialCheckpoint(seconds float64) error {
	p := t.partial
	return t.writeCheckpoint(partialCheckpoint, seconds, &p)
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

// latestCheckpoint returns the path of the checkpoint to resume from: the
// partial one when it is newer than the last epoch's, else the last
// epoch's; "" when there is none.
func (t *trainer) latestCheckpoint() (string, error) {
	epochs, err := listCheckpoints(filepath.Join(t.opts.Out, rundir.CheckpointDir))
	if err != nil {
		return "", err
	}
	partial := t.checkpointPath(partialCheckpoint)
	if _, err := os.Stat(partial); err == nil {
		// The partial checkpoint is of the epoch after the last completed
		// one; an epoch checkpoint written after it would have removed it.
		if len(epochs) == 0 {
			return partial, nil
		}
		h, _, err := readCheckpoint(partial)
		if err != nil {
			return "", err
		}
		if h.Epoch >= epochs[len(epochs)-1] {
			return partial, nil
		}
	}
	if len(epochs) == 0 {
		return "", nil
	}
	return t.checkpointPath(checkpointName(epochs[len(epochs)-1])), nil
}

// restoreLatest loads the newest checkpoint of the run directory into the
// trainer. With no checkpoint yet (killed during the first epoch, or
// checkpoints off) the run starts over from its seed, which gives the same
// result.
func (t *trainer) restoreLatest() error {
	path, err := t.latestCheckpoint()
	if err != nil {
		return err
	}
	if path == "" {
		if err := rundir.TrimFilterNorms(t.opts.Out, -1); err != nil {
			return err
		}
		return rundir.WriteMetrics(t.opts.Out, nil)
	}
	h, payload, err := readCheckpoint(path)
	if err != nil {
		return err
	}
	if d := rundir.Diff(rundir.Config(h.Config), rundir.Config(t.cfg)); d != nil {
		return fmt.Errorf("checkpoint %s was written with a different configuration than %s (%s)", path, rundir.ConfigFile, strings.Join(d, "; "))
	}
	if h.Epoch > t.cfg.Epochs {
		return fmt.Errorf("checkpoint %s: epoch %d is beyond the run's %d epochs", path, h.Epoch, t.cfg.Epochs)
	}
	if err := t.restoreVariables(path, h.Variables, payload); err != nil {
		return err
	}
	t.epoch, t.steps = h.Epoch, h.Step
	t.history = slices.Clone(h.History)
	t.bestAcc, t.bestEpoch = h.BestAcc, h.BestEpoch
	t.priorSeconds = h.Seconds
	if h.Partial != nil {
		t.partial = *h.Partial
	}
	if want := t.epoch*t.stepsPerEpoch + t.partial.Steps; t.steps != want || t.partial.Steps >= t.stepsPerEpoch {
		return fmt.Errorf("checkpoint %s: step %d does not match epoch %d and %d steps into the next (%d steps per epoch)", path, t.steps, t.epoch, t.partial.Steps, t.stepsPerEpoch)
	}
	// Bring metrics.csv and filter_norms.csv back in line with the
	// checkpoint (a kill after the checkpoint may have left more rows).
	if err := rundir.TrimFilterNorms(t.opts.Out, t.steps); err != nil {
		return err
	}
	return rundir.WriteMetrics(t.opts.Out, t.history)
}

// restoreVariables creates the checkpoint's variables with their saved
// values before any graph is built: building then reuses them instead of
// initialising new ones.
func (t *trainer) restoreVariables(path string, vars []checkpointVar, payload []byte) error {
	t.restored = make(map[string]bool, len(vars))
	for _, cv := range vars {
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
	return nil
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
