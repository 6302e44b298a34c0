package cpu

import (
	"fmt"
	"runtime/debug"
	"strings"
	"sync"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/pkg/core/shapes"
)

// Executable is a compiled computation. Execute may be called concurrently:
// each concurrent call runs on its own arena of intermediate buffers, and
// arenas are reused across calls.
type Executable struct {
	backend *Backend
	name    string

	paramNames  []string
	paramShapes []shapes.Shape
	paramValues []int

	values     []valueInfo
	steps      []step
	outputs    []outputPlan
	slotWords  []int
	dynAliases []int

	mu        sync.Mutex
	free      []*arena
	finalized bool
}

var _ backends.Executable = (*Executable)(nil)

// arena holds the memory of one in-flight execution.
type arena struct {
	slots [][]uint64
	vals  []any
	args  []any
	// Per-call bookkeeping of Execute, reused (cleared on return).
	bufs []*Buffer
	// reuse marks the inputs whose memory may become an output's: donated
	// and not shared.
	reuse     []bool
	used      []bool
	outBufs   []*Buffer
	fromDonor []bool
}

func (e *Executable) newArena() *arena {
	a := &arena{vals: make([]any, len(e.values)),
		bufs: make([]*Buffer, len(e.paramShapes)), reuse: make([]bool, len(e.paramShapes)),
		used:    make([]bool, len(e.paramShapes)),
		outBufs: make([]*Buffer, len(e.outputs)), fromDonor: make([]bool, len(e.outputs))}
	a.slots = make([][]uint64, len(e.slotWords))
	for i, nw := range e.slotWords {
		a.slots[i] = make([]uint64, nw)
	}
	maxArgs := 0
	for _, st := range e.steps {
		maxArgs = max(maxArgs, len(st.ins)+len(st.outs))
	}
	a.args = make([]any, maxArgs)
	for i, v := range e.values {
		switch v.kind {
		case vkArena:
			if v.slot >= 0 {
				a.vals[i] = viewAs(v.dtype, a.slots[v.slot], v.size)
			} else {
				a.vals[i] = makeSlice(v.dtype, 0)
			}
		case vkConst:
			a.vals[i] = v.cnst
		}
	}
	for i, v := range e.values {
		if v.kind == vkAlias && a.vals[v.root] != nil {
			a.vals[i] = a.vals[v.root]
		}
	}
	return a
}

func (e *Executable) getArena() (*arena, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.finalized {
		return nil, fmt.Errorf("cpu backend: executable %q was finalized", e.name)
	}
	if n := len(e.free); n > 0 {
		a := e.free[n-1]
		e.free = e.free[:n-1]
		return a, nil
	}
	return e.newArena(), nil
}

func (e *Executable) putArena(a *arena) {
	clear(a.bufs)
	clear(a.reuse)
	clear(a.used)
	clear(a.outBufs)
	clear(a.fromDonor)
	// Drop references to caller buffers.
	for _, pv := range e.paramValues {
		a.vals[pv] = nil
	}
	for _, o := range e.outputs {
		if o.direct {
			a.vals[e.values[o.value].root] = nil
		}
	}
	for _, i := range e.dynAliases {
		a.vals[i] = nil
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if !e.finalized {
		e.free = append(e.free, a)
	}
}

// Finalize releases the executable's memory.
func (e *Executable) Finalize() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.finalized = true
	e.free = nil
}

// Inputs returns the parameters' names and shapes in creation order.
func (e *Executable) Inputs() (names []string, inputShapes []shapes.Shape) {
	return e.paramNames, e.paramShapes
}

// Outputs returns the output shapes in the order given to Compile.
func (e *Executable) Outputs() []shapes.Shape {
	s := make([]shapes.Shape, len(e.outputs))
	for i, o := range e.outputs {
		s[i] = o.shape
	}
	return s
}

// Execute runs the computation. Inputs marked in donate are consumed: they
// are invalid after the call, and the memory of those that are not shared
// may be reused for outputs of the same dtype and shape (see the package
// doc's buffer contract).
func (e *Executable) Execute(inputs []backends.Buffer, donate []bool, _ backends.DeviceNum) (results []backends.Buffer, err error) {
	if len(inputs) != len(e.paramShapes) {
		return nil, fmt.Errorf("cpu backend: executing %q: got %d inputs, want %d", e.name, len(inputs), len(e.paramShapes))
	}
	if donate != nil && len(donate) != len(inputs) {
		return nil, fmt.Errorf("cpu backend: executing %q: got %d donate flags for %d inputs", e.name, len(donate), len(inputs))
	}
	a, err := e.getArena()
	if err != nil {
		return nil, err
	}
	defer e.putArena(a)
	bufs := a.bufs
	for i, in := range inputs {
		bb, ok := in.(*Buffer)
		if !ok || bb == nil || bb.invalid.Load() {
			// Build the message only on failure: Execute must not allocate.
			_, err := toBuffer(in, fmt.Sprintf("executing %q, input #%d (%q)", e.name, i, e.paramNames[i]))
			return nil, err
		}
		if !bb.shape.Equal(e.paramShapes[i]) {
			return nil, fmt.Errorf("cpu backend: executing %q: input #%d (%q) has shape %s, want %s",
				e.name, i, e.paramNames[i], bb.shape, e.paramShapes[i])
		}
		bufs[i] = bb
		// A donated shared buffer is consumed but its memory, which the
		// caller may still reference, is never written or recycled.
		a.reuse[i] = donate != nil && donate[i] && !bb.shared
	}
	if donate != nil {
		for i := range bufs {
			for j := range i {
				if bufs[i] == bufs[j] && (a.reuse[i] || a.reuse[j]) {
					return nil, fmt.Errorf("cpu backend: executing %q: the same buffer is passed as inputs #%d and #%d and donated", e.name, j, i)
				}
			}
		}
	}
	vals := a.vals
	for i, pv := range e.paramValues {
		vals[pv] = bufs[i].flat
	}

	// Output buffers: a donated input when the plan allows, else fresh.
	used := a.used // donated inputs already handed over
	outBufs := a.outBufs
	fromDonor := a.fromDonor
	donated := func(pv int) (int, bool) {
		pi := e.values[pv].param
		return pi, a.reuse[pi] && !used[pi]
	}
	// Pass-through outputs of donated parameters first.
	for oi, o := range e.outputs {
		if o.direct {
			continue
		}
		r := e.values[o.value].root
		if e.values[r].kind == vkParam {
			if pi, ok := donated(r); ok {
				used[pi] = true
				fromDonor[oi] = true
				outBufs[oi] = &Buffer{shape: o.shape.Clone(), flat: bufs[pi].flat}
			}
		}
	}
	for oi, o := range e.outputs {
		if !o.direct {
			continue
		}
		r := e.values[o.value].root
		for _, pv := range o.donors {
			if pi, ok := donated(pv); ok {
				used[pi] = true
				fromDonor[oi] = true
				outBufs[oi] = &Buffer{shape: o.shape.Clone(), flat: bufs[pi].flat}
				break
			}
		}
		if outBufs[oi] == nil {
			outBufs[oi] = &Buffer{shape: o.shape.Clone(), flat: e.backend.getFlat(o.shape.DType, o.shape.Size())}
		}
		vals[r] = outBufs[oi].flat
	}
	for _, i := range e.dynAliases {
		vals[i] = vals[e.values[i].root]
	}

	if err := e.runSteps(a); err != nil {
		for oi, ob := range outBufs {
			if ob != nil && !fromDonor[oi] {
				e.backend.putFlat(ob.shape.DType, ob.flat)
			}
		}
		// Donated inputs may have been partly overwritten: invalidate them.
		for i := range bufs {
			if donate != nil && donate[i] {
				bufs[i].invalid.Store(true)
			}
		}
		return nil, err
	}

	// Copied outputs.
	for oi, o := range e.outputs {
		if outBufs[oi] != nil {
			continue
		}
		ob := e.backend.newBuffer(o.shape)
		copyFlat(ob.flat, vals[o.value])
		outBufs[oi] = ob
	}
	// Donated inputs are consumed.
	for i, d := range donate {
		if !d {
			continue
		}
		if bufs[i].invalid.Swap(true) {
			continue
		}
		if !used[i] && !bufs[i].shared {
			e.backend.putFlat(bufs[i].shape.DType, bufs[i].flat)
		}
		bufs[i].flat = nil
	}
	results = make([]backends.Buffer, len(outBufs))
	for i, ob := range outBufs {
		results[i] = ob
	}
	return results, nil
}

// runSteps executes the steps in order, turning kernel panics into errors.
func (e *Executable) runSteps(a *arena) (err error) {
	cur := -1
	defer func() {
		if r := recover(); r != nil {
			name := "?"
			if cur >= 0 {
				name = e.steps[cur].name
			}
			err = fmt.Errorf("cpu backend: executing %q: step #%d (%s) failed: %v\n%s", e.name, cur, name, r, debug.Stack())
		}
	}()
	vals := a.vals
	for si := range e.steps {
		cur = si
		st := &e.steps[si]
		ni := len(st.ins)
		args := a.args[:ni+len(st.outs)]
		for j, v := range st.ins {
			args[j] = vals[v]
		}
		for j, v := range st.outs {
			args[ni+j] = vals[v]
		}
		st.run(args[:ni], args[ni:])
	}
	for i := range a.args {
		a.args[i] = nil
	}
	return nil
}

// describe lists the compiled steps, one per line (for tests and debugging).
func (e *Executable) describe() string {
	var sb strings.Builder
	for i, st := range e.steps {
		fmt.Fprintf(&sb, "#%d %s ins=%v outs=%v", i, st.name, st.ins, st.outs)
		for _, o := range st.outs {
			v := e.values[o]
			fmt.Fprintf(&sb, " [%s x%d slot=%d kind=%d]", v.dtype, v.size, v.slot, v.kind)
		}
		sb.WriteByte('\n')
	}
	return sb.String()
}
