package cpu

import (
	"fmt"
	"slices"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/pkg/core/dtypes"
	"github.com/gomlx/gomlx/pkg/core/shapes"
	"github.com/sgt-dev/sgt/backend/kernels"
)

// DotGeneral is lowered to batched GEMMs: at build time each operand is
// brought, by a Transpose node when its axes are not already in order, to
// [batch, M, K] or [batch, K, M] (lhs) and [batch, K, N] or [batch, N, K]
// (rhs); the transposed forms are absorbed by the GEMM's trans flags.

func init() {
	registerLowering(lowerDot, backends.OpTypeDotGeneral)
}

type dotData struct {
	batch, m, n, k int
	transA, transB bool
}

// Dot is the classic dot product: vector·vector, matrix·vector or
// matrix·matrix, contracting lhs's last axis with rhs's first.
func (b *Builder) Dot(lhs, rhs backends.Op) (backends.Op, error) {
	in, err := b.checkOps("Dot", lhs, rhs)
	if err != nil {
		return nil, err
	}
	lr, rr := in[0].shape.Rank(), in[1].shape.Rank()
	if lr < 1 || lr > 2 || rr < 1 || rr > 2 || (lr == 1 && rr == 2) {
		return nil, fmt.Errorf("cpu backend: Dot: unsupported ranks %s · %s", in[0].shape, in[1].shape)
	}
	return b.DotGeneral(lhs, []int{lr - 1}, nil, rhs, []int{0}, nil)
}

// DotGeneral contracts lhsContractingAxes with rhsContractingAxes, aligning
// lhsBatchAxes with rhsBatchAxes; the output is [batch..., lhs free...,
// rhs free...].
func (b *Builder) DotGeneral(lhsOp backends.Op, lhsContractingAxes, lhsBatchAxes []int,
	rhsOp backends.Op, rhsContractingAxes, rhsBatchAxes []int) (backends.Op, error) {
	in, err := b.checkOps("DotGeneral", lhsOp, rhsOp)
	if err != nil {
		return nil, err
	}
	lhs, rhs := in[0], in[1]
	ls, rs := lhs.shape, rhs.shape
	if ls.DType != rs.DType {
		return nil, fmt.Errorf("cpu backend: DotGeneral: dtypes differ: %s and %s", ls, rs)
	}
	if ls.DType == dtypes.Bool {
		return nil, fmt.Errorf("cpu backend: DotGeneral: booleans not supported (%s)", ls)
	}
	if len(lhsContractingAxes) != len(rhsContractingAxes) || len(lhsBatchAxes) != len(rhsBatchAxes) {
		return nil, fmt.Errorf("cpu backend: DotGeneral: lhs has %d contracting and %d batch axes, rhs %d and %d",
			len(lhsContractingAxes), len(lhsBatchAxes), len(rhsContractingAxes), len(rhsBatchAxes))
	}
	lFree, err := freeAxes("lhs", ls, lhsContractingAxes, lhsBatchAxes)
	if err != nil {
		return nil, err
	}
	rFree, err := freeAxes("rhs", rs, rhsContractingAxes, rhsBatchAxes)
	if err != nil {
		return nil, err
	}
	d := &dotData{batch: 1, m: 1, n: 1, k: 1}
	var outDims []int
	for i, a := range lhsBatchAxes {
		if ls.Dimensions[a] != rs.Dimensions[rhsBatchAxes[i]] {
			return nil, fmt.Errorf("cpu backend: DotGeneral: batch axis %d of lhs %s and %d of rhs %s differ", a, ls, rhsBatchAxes[i], rs)
		}
		d.batch *= ls.Dimensions[a]
		outDims = append(outDims, ls.Dimensions[a])
	}
	for i, a := range lhsContractingAxes {
		if ls.Dimensions[a] != rs.Dimensions[rhsContractingAxes[i]] {
			return nil, fmt.Errorf("cpu backend: DotGeneral: contracting axis %d of lhs %s and %d of rhs %s differ", a, ls, rhsContractingAxes[i], rs)
		}
		d.k *= ls.Dimensions[a]
	}
	for _, a := range lFree {
		d.m *= ls.Dimensions[a]
		outDims = append(outDims, ls.Dimensions[a])
	}
	for _, a := range rFree {
		d.n *= rs.Dimensions[a]
		outDims = append(outDims, rs.Dimensions[a])
	}
	// Bring operands into GEMM layout.
	lhs, d.transA, err = b.gemmLayout(lhs, lhsBatchAxes, lFree, lhsContractingAxes)
	if err != nil {
		return nil, err
	}
	rhs, d.transB, err = b.gemmLayout(rhs, rhsBatchAxes, rhsContractingAxes, rFree)
	if err != nil {
		return nil, err
	}
	return b.newNode(backends.OpTypeDotGeneral, shapes.Make(ls.DType, outDims...), d, lhs, rhs), nil
}

// freeAxes validates contracting and batch axes and returns the others.
func freeAxes(name string, s shapes.Shape, contracting, batch []int) ([]int, error) {
	used := make([]bool, s.Rank())
	for _, a := range slices.Concat(contracting, batch) {
		if a < 0 || a >= s.Rank() || used[a] {
			return nil, fmt.Errorf("cpu backend: DotGeneral: %s axis %d invalid or repeated for %s", name, a, s)
		}
		used[a] = true
	}
	var free []int
	for a := range s.Rank() {
		if !used[a] {
			free = append(free, a)
		}
	}
	return free, nil
}

// gemmLayout returns x laid out as [batch, rows, cols] (trans=false) or
// [batch, cols, rows] (trans=true), adding a Transpose node if needed.
func (b *Builder) gemmLayout(x *node, batch, rows, cols []int) (*node, bool, error) {
	straight := slices.Concat(batch, rows, cols)
	if isIdentityPerm(straight) {
		return x, false, nil
	}
	if isIdentityPerm(slices.Concat(batch, cols, rows)) {
		return x, true, nil
	}
	t, err := b.Transpose(x, straight...)
	if err != nil {
		return nil, false, err
	}
	return t.(*node), false, nil
}

func isIdentityPerm(p []int) bool {
	for i, v := range p {
		if i != v {
			return false
		}
	}
	return true
}

// dotSmallFlops is the per-batch problem size below which the batches of a
// DotGeneral are spread over workers instead of each GEMM.
const dotSmallFlops = 1 << 16

func lowerDot(n *node) (kernelFn, error) {
	d := *n.data.(*dotData)
	m, nn, k := d.m, d.n, d.k
	lda, ldb := k, nn
	if d.transA {
		lda = m
	}
	if d.transB {
		ldb = k
	}
	aStride, bStride, cStride := m*k, k*nn, m*nn
	// Leading dimensions must be >= 1 even for empty matrices.
	lda, ldb = max(lda, 1), max(ldb, 1)
	ldc := max(nn, 1)
	perBatch := func(batchFn func(i int)) {
		if 2*m*nn*k < dotSmallFlops {
			kernels.Parallel(d.batch, max(1, dotSmallFlops/(2*m*nn*k+1)), func(lo, hi int) {
				for i := lo; i < hi; i++ {
					batchFn(i)
				}
			})
			return
		}
		for i := range d.batch {
			batchFn(i)
		}
	}
	switch n.shape.DType {
	case dtypes.Float32:
		return func(ins, outs []any) {
			a, bb, c := ins[0].([]float32), ins[1].([]float32), outs[0].([]float32)
			if d.batch == 1 { // the common case, without a closure
				if err := kernels.GemmF32(d.transA, d.transB, m, nn, k, 1, a, lda, bb, ldb, 0, c, ldc); err != nil {
					panic(err)
				}
				return
			}
			perBatch(func(i int) {
				if err := kernels.GemmF32(d.transA, d.transB, m, nn, k, 1, a[i*aStride:], lda, bb[i*bStride:], ldb, 0, c[i*cStride:], ldc); err != nil {
					panic(err)
				}
			})
		}, nil
	case dtypes.Float64:
		return func(ins, outs []any) {
			a, bb, c := ins[0].([]float64), ins[1].([]float64), outs[0].([]float64)
			if d.batch == 1 { // the common case, without a closure
				if err := kernels.GemmF64(d.transA, d.transB, m, nn, k, 1, a, lda, bb, ldb, 0, c, ldc); err != nil {
					panic(err)
				}
				return
			}
			perBatch(func(i int) {
				if err := kernels.GemmF64(d.transA, d.transB, m, nn, k, 1, a[i*aStride:], lda, bb[i*bStride:], ldb, 0, c[i*cStride:], ldc); err != nil {
					panic(err)
				}
			})
		}, nil
	case dtypes.Int8:
		return intDot[int8](d), nil
	case dtypes.Int16:
		return intDot[int16](d), nil
	case dtypes.Int32:
		return intDot[int32](d), nil
	case dtypes.Int64:
		return intDot[int64](d), nil
	case dtypes.Uint8:
		return intDot[uint8](d), nil
	case dtypes.Uint16:
		return intDot[uint16](d), nil
	case dtypes.Uint32:
		return intDot[uint32](d), nil
	case dtypes.Uint64:
		return intDot[uint64](d), nil
	}
	return nil, unsupported(n.op, n.shape.DType)
}

// intDot is a simple batched matrix product for integer types.
func intDot[T intT](d dotData) kernelFn {
	return func(ins, outs []any) {
		a, b, c := ins[0].([]T), ins[1].([]T), outs[0].([]T)
		refGemm(d, a, b, c)
	}
}

// refGemm is the reference batched matrix product (also used by tests).
func refGemm[T numT](d dotData, a, b, c []T) {
	for bi := range d.batch {
		A, B, C := a[bi*d.m*d.k:], b[bi*d.k*d.n:], c[bi*d.m*d.n:]
		for i := range d.m {
			for j := range d.n {
				var acc T
				for p := range d.k {
					var av, bv T
					if d.transA {
						av = A[p*d.m+i]
					} else {
						av = A[i*d.k+p]
					}
					if d.transB {
						bv = B[j*d.k+p]
					} else {
						bv = B[p*d.n+j]
					}
					acc += av * bv
				}
				C[i*d.n+j] = acc
			}
		}
	}
}
