// Package cpu is sgt's pure-Go GoMLX backend, registered as "cpu".
//
// It implements GoMLX's backends.Backend for everything training MLPs,
// CIFAR and ImageNet ResNets (with or without batch norm), SE blocks,
// pooling and dropout needs, in float32 and float64 (integer, unsigned and
// boolean dtypes for the ops GoMLX uses them with): elementwise math,
// comparisons, layout ops, reductions, DotGeneral, ConvGeneral in full
// generality, ReduceWindow, SelectAndScatter, fused batch norm, gather and
// scatter, dynamic slices and RNGBitGenerator. Capabilities lists them.
// BFloat16 tensors are stored, moved by the layout ops, compared and
// converted to and from every dtype (so GoMLX's RandomUniform works in
// BFloat16); other ops refuse them with an error naming the op (see
// bf16.go).
//
// # Compilation
//
// Builder records a graph; Compile turns it into a list of steps, in the
// passes listed on the compile function:
//
//   - Dead code is dropped; Reshape and Identity become aliases (no copy);
//     DotGeneral and ConvGeneral are rewritten at build time into canonical
//     layouts (batched GEMM; kernels.ConvParams' channels-last convolution)
//     with explicit Transpose nodes only where the axes are not already in
//     order, so the temporaries are planned like any other value.
//     Convolutions read their kernel and write their output in place in
//     other axis orders (kernels.ConvKernelLayout, ConvOutputLayout), with
//     a Reverse of the kernel's spatial axes folded in, so GoMLX's input and
//     kernel gradients need no kernel or output transposes.
//   - Sums of broadcast products, ReduceSum(Mul(a', b')) with a' and b'
//     reshaped, transposed or broadcast views of a and b (how GoMLX builds
//     DotGeneral gradients), are built as a DotGeneral of a and b instead of
//     materializing the product (see contract.go).
//   - Elementwise ops (unary, binary, comparisons, Where, Clamp,
//     ConvertDType) are fused: a node joins its consumers' cluster when they
//     all belong to one cluster of the same dimensions, and a cluster whose
//     result feeds a later cluster of the same dimensions joins it, its
//     result becoming a side output of the merged pass (e.g. an optimizer's
//     weight and momentum updates, or x + y and relu(x + y), in one pass). A
//     cluster runs as one pass over its output in blocks of fuseBlock
//     elements held in per-worker registers; operands are read in place
//     (same shape), once (scalars) or gathered with strides (implicit
//     broadcasting and BroadcastInDim, which is never materialized when only
//     elementwise ops read it). Peepholes drop x - 0 and x * 1 and turn
//     GoMLX's ReLU gradient into one masked multiply. The pass allocates
//     nothing per block.
//   - Every other op is lowered to a kernel closure with its shape-dependent
//     tables precomputed (numeric work is done by package kernels: GEMM,
//     convolution, pooling, batch norm).
//   - Buffers are planned from liveness: intermediate values get slots of a
//     per-executable arena (greedy best fit, a slot is reused after its last
//     reader; elementwise steps write in place over a dying input). Outputs
//     are written straight into the returned buffers, or into a donated
//     input's memory when the rules below allow (e.g. w - lr*g reuses w).
//     Arenas are allocated once and reused across Execute calls.
//
// # Buffers and donation
//
// The rules every caller (GoMLX's tensors, Exec and trainers) can rely on:
//
//   - Storage. A Buffer holds a flat, row-major Go slice of its own dtype
//     ([]float32, []bfloat16.BFloat16, ...). Memory handed to a buffer is
//     only ever used as that dtype.
//   - Ownership. Buffers made by BufferFromFlatData and the outputs of
//     Execute belong to the caller until BufferFinalize or donation, which
//     give their memory back to the backend (a pool per dtype and size,
//     reused by later buffers and outputs). BufferData returns the storage
//     itself, valid until then; the caller writes it only while no
//     execution reads the buffer.
//   - Shared buffers. NewSharedBuffer allocates memory for the caller, who
//     may read and write it directly while no execution uses the buffer.
//     The backend never writes that memory, never gives it to another
//     buffer and never pools it, even after BufferFinalize or donation.
//   - Inputs. Execute reads its inputs in place, without copies, and never
//     writes an input that is not donated. The same buffer may be passed
//     as several inputs, unless it is donated and not shared.
//   - Donation. An input marked in donate is consumed: once Execute has
//     run, with or without an error, the buffer is invalid and any use of
//     it is an error (an Execute refusing its arguments, e.g. a wrong
//     shape, consumes nothing). If it is not shared, its memory may become
//     the memory of one output: an output returning the input unchanged (handed
//     over without a copy), or a computed output of the same dtype and
//     number of elements that is written only after the input's last read
//     (or in place, element by element, by the step reading it last).
//     Memory of a donated input that no output takes goes back to the
//     pool. A donated shared buffer is consumed but treated as not donated
//     otherwise: outputs get their own memory (copy on write), so the
//     caller's slice keeps its values. Donation never changes results.
//   - Outputs. Every output is a new Buffer owned by the caller: it never
//     aliases an input that was not donated (an input returned as an
//     output is copied), a constant, another output (a value returned
//     twice is copied) or the executable's internal memory.
//   - Dtypes. Donated memory only goes to an output of the input's exact
//     dtype: an int32 input never holds a float32 output, although both
//     have 4-byte elements (nor int64/float64/uint64, int16/uint16/bfloat16,
//     and so on). Only the executable's internal arena slots, which no
//     caller sees, are reused across dtypes.
//   - Concurrency. Execute may run concurrently on one executable; a
//     buffer read by one execution must not be donated to or finalized
//     during another.
//
// # Execution
//
// Steps run in order; large steps are split over cores with
// kernels.Parallel. Execute is safe to call concurrently from several
// goroutines: each concurrent call takes its own arena from the
// executable's free list. Kernel panics are returned as errors naming the
// step.
//
// RNGBitGenerator uses a PCG generator (math/rand/v2) seeded from GoMLX's
// [3]uint64 state and is bit-compatible with GoMLX's simplego backend, so
// models initialise identically on both.
package cpu

import (
	"fmt"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/pkg/core/dtypes"
)

// BackendName is the name under which this backend is registered with GoMLX
// (use it in GOMLX_BACKEND or backends.NewWithConfig).
const BackendName = "cpu"

func init() {
	backends.Register(BackendName, New)
}

// Backend is sgt's pure-Go CPU backend. Create it with New (or through
// GoMLX's backends.NewWithConfig("cpu")).
type Backend struct {
	// pools of flat slices released by BufferFinalize, keyed by poolKey.
	pools sync.Map
	// finalized is set by Finalize.
	finalized atomic.Bool
	// noContract disables the broadcast-multiply-reduce to GEMM rewrite
	// (option "nocontract").
	noContract bool
	// noConvLayout makes convolutions transpose their kernels and outputs
	// into the canonical layout instead of reading and writing them in
	// place (option "noconvlayout").
	noConvLayout bool
	// noMultiFuse keeps elementwise clusters single-output (option
	// "nomultifuse").
	noMultiFuse bool
	// noBNReLU keeps batch norm and the ReLU after it (and the ReLU
	// gradient before the batch-norm gradient) as separate passes (option
	// "nobnrelu").
	noBNReLU bool
	// noReLUMask keeps the ReLU input a fused batch norm saves for its
	// gradient as a full tensor instead of a ReLU mask (option
	// "norelumask").
	noReLUMask bool
}

var _ backends.Backend = (*Backend)(nil)

// New creates a CPU backend. The configuration is a comma-separated list of
// options (empty for the defaults):
//
//   - nocontract: build sums of broadcast products, ReduceSum(Mul(a, b)),
//     as written instead of as a DotGeneral (for comparisons and tests).
//   - noconvlayout: convolutions transpose (and reverse) their kernels and
//     outputs into the canonical layout instead of reading and writing them
//     in place.
//   - nomultifuse: elementwise clusters have a single output: a fused
//     value read by several passes is materialized and read back instead of
//     written as a side output of one merged pass.
//   - nobnrelu: a ReLU (or residual add + ReLU) after a batch norm, and the
//     ReLU-gradient mask before a batch-norm gradient, run as passes of
//     their own instead of inside the batch-norm kernels.
//   - norelumask: a fused batch norm + ReLU saves the ReLU's input for its
//     gradient as a full tensor instead of a 2-bit-per-element ReLU mask.
func New(config string) (backends.Backend, error) {
	b := &Backend{}
	for _, opt := range strings.Split(config, ",") {
		switch opt = strings.TrimSpace(opt); opt {
		case "":
		case "nocontract":
			b.noContract = true
		case "noconvlayout":
			b.noConvLayout = true
		case "nomultifuse":
			b.noMultiFuse = true
		case "nobnrelu":
			b.noBNReLU = true
		case "norelumask":
			b.noReLUMask = true
		default:
			return nil, fmt.Errorf("cpu backend: unknown configuration option %q in %q (known: nocontract, noconvlayout, nomultifuse, nobnrelu, norelumask)", opt, config)
		}
	}
	return b, nil
}

// Name returns the backend's short name, "cpu".
func (b *Backend) Name() string { return BackendName }

// String returns the backend's name.
func (b *Backend) String() string { return BackendName }

// Description returns a one-line description of the backend.
func (b *Backend) Description() string {
	return "sgt pure-Go CPU backend (compiled graphs, fused elementwise ops)"
}

// NumDevices returns 1: the whole CPU is one device.
func (b *Backend) NumDevices() int { return 1 }

// DeviceDescription describes device 0.
func (b *Backend) DeviceDescription(deviceNum backends.DeviceNum) string {
	return fmt.Sprintf("cpu device #%d", deviceNum)
}

// Builder creates a builder for a new computation with the given name.
func (b *Backend) Builder(name string) backends.Builder {
	return newBuilder(b, name)
}

// Finalize releases the backend's pooled memory and makes it unusable.
func (b *Backend) Finalize() {
	b.finalized.Store(true)
	b.pools.Clear()
}

// IsFinalized reports whether Finalize was called.
func (b *Backend) IsFinalized() bool { return b.finalized.Load() }

// Capabilities reports exactly the ops and dtypes this backend implements.
func (b *Backend) Capabilities() backends.Capabilities {
	c := backends.Capabilities{
		Operations: make(map[backends.OpType]bool, len(implementedOps)),
		DTypes:     make(map[dtypes.DType]bool, len(supportedDTypes)),
	}
	for _, op := range implementedOps {
		c.Operations[op] = true
	}
	for _, dt := range supportedDTypes {
		c.DTypes[dt] = true
	}
	return c
}

// implementedOps lists every op the Builder implements.
var implementedOps = []backends.OpType{
	backends.OpTypeParameter, backends.OpTypeConstant, backends.OpTypeIdentity,
	// Elementwise unary.
	backends.OpTypeAbs, backends.OpTypeNeg, backends.OpTypeExp, backends.OpTypeExpm1,
	backends.OpTypeLog, backends.OpTypeLog1p, backends.OpTypeLogistic, backends.OpTypeTanh,
	backends.OpTypeSqrt, backends.OpTypeRsqrt, backends.OpTypeSign, backends.OpTypeFloor,
	backends.OpTypeCeil, backends.OpTypeRound, backends.OpTypeCos, backends.OpTypeSin,
	backends.OpTypeErf, backends.OpTypeIsFinite, backends.OpTypeIsNaN, backends.OpTypeLogicalNot,
	backends.OpTypeBitwiseNot, backends.OpTypeBitCount, backends.OpTypeClz,
	// Elementwise binary.
	backends.OpTypeAdd, backends.OpTypeSub, backends.OpTypeMul, backends.OpTypeDiv,
	backends.OpTypePow, backends.OpTypeMax, backends.OpTypeMin, backends.OpTypeRem,
	backends.OpTypeLogicalAnd, backends.OpTypeLogicalOr, backends.OpTypeLogicalXor,
	backends.OpTypeBitwiseAnd, backends.OpTypeBitwiseOr, backends.OpTypeBitwiseXor,
	backends.OpTypeShiftLeft, backends.OpTypeShiftRightArithmetic, backends.OpTypeShiftRightLogical,
	backends.OpTypeEqual, backends.OpTypeNotEqual, backends.OpTypeGreaterOrEqual,
	backends.OpTypeGreaterThan, backends.OpTypeLessOrEqual, backends.OpTypeLessThan,
	backends.OpTypeEqualTotalOrder, backends.OpTypeNotEqualTotalOrder,
	backends.OpTypeGreaterOrEqualTotalOrder, backends.OpTypeGreaterThanTotalOrder,
	backends.OpTypeLessOrEqualTotalOrder, backends.OpTypeLessThanTotalOrder,
	backends.OpTypeConvertDType, backends.OpTypeWhere, backends.OpTypeClamp,
	// Shape ops.
	backends.OpTypeBroadcastInDim, backends.OpTypeReshape, backends.OpTypeTranspose,
	backends.OpTypeSlice, backends.OpTypeConcatenate, backends.OpTypePad, backends.OpTypeReverse,
	backends.OpTypeIota, backends.OpTypeDynamicSlice, backends.OpTypeDynamicUpdateSlice,
	// Reductions.
	backends.OpTypeReduceSum, backends.OpTypeReduceMax, backends.OpTypeReduceMin,
	backends.OpTypeReduceProduct, backends.OpTypeReduceLogicalAnd, backends.OpTypeReduceLogicalOr,
	backends.OpTypeReduceLogicalXor, backends.OpTypeReduceBitwiseAnd, backends.OpTypeReduceBitwiseOr,
	backends.OpTypeReduceBitwiseXor, backends.OpTypeArgMinMax,
	// Linear algebra, convolution, pooling, normalisation.
	backends.OpTypeDot, backends.OpTypeDotGeneral, backends.OpTypeConvGeneral,
	backends.OpTypeReduceWindow, backends.OpTypeSelectAndScatterMax, backends.OpTypeSelectAndScatterMin,
	backends.OpTypeBatchNormForTraining, backends.OpTypeBatchNormForInference, backends.OpTypeBatchNormGradient,
	// Gather/scatter and random numbers.
	backends.OpTypeGather, backends.OpTypeScatterSum, backends.OpTypeScatterMax, backends.OpTypeScatterMin,
	backends.OpTypeRNGBitGenerator,
}
