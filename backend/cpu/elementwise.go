package cpu

import (
	"fmt"
	"math"
	"math/bits"
	"unsafe"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/backends/shapeinference"
	"github.com/gomlx/gomlx/pkg/core/dtypes"
	"github.com/gomlx/gomlx/pkg/core/dtypes/bfloat16"
	"github.com/gomlx/gomlx/pkg/core/shapes"
	"github.com/sgt-dev/sgt/backend/kernels"
)

// ewFn computes one block of an elementwise op: dst and srcs are typed
// slices of the same length (broadcasting is resolved by the caller).
type ewFn func(dst any, srcs []any)

// asSlice returns the []T held by x, which holds either a []T or a *[]T
// (the fused engine passes its block views by pointer: boxing a slice into
// an interface allocates, boxing a pointer does not).
func asSlice[T any](x any) []T {
	if p, ok := x.(*[]T); ok {
		return *p
	}
	return x.([]T)
}

func (b *Builder) addUnary(op backends.OpType, x backends.Op) (backends.Op, error) {
	in, err := b.checkOps(op.String(), x)
	if err != nil {
		return nil, err
	}
	shape, err := shapeinference.UnaryOp(op, in[0].shape)
	if err != nil {
		return nil, fmt.Errorf("cpu backend: %s: %w", op, err)
	}
	if _, err := unaryKernel(op, shape.DType); err != nil {
		return nil, err
	}
	return b.newNode(op, shape, nil, in[0]), nil
}

// IsFinite adds the elementwise test for finite values (not NaN or ±Inf).
func (b *Builder) IsFinite(x backends.Op) (backends.Op, error) {
	return b.addFloatTest(backends.OpTypeIsFinite, x)
}

// IsNaN adds the elementwise test for NaN.
func (b *Builder) IsNaN(x backends.Op) (backends.Op, error) {
	return b.addFloatTest(backends.OpTypeIsNaN, x)
}

func (b *Builder) addFloatTest(op backends.OpType, x backends.Op) (backends.Op, error) {
	in, err := b.checkOps(op.String(), x)
	if err != nil {
		return nil, err
	}
	if !in[0].shape.DType.IsFloat() || !isSupportedDType(in[0].shape.DType) {
		return nil, fmt.Errorf("cpu backend: %s: needs a float operand, got %s", op, in[0].shape)
	}
	shape := in[0].shape.Clone()
	shape.DType = dtypes.Bool
	return b.newNode(op, shape, nil, in[0]), nil
}

func (b *Builder) addBinary(op backends.OpType, lhs, rhs backends.Op) (backends.Op, error) {
	in, err := b.checkOps(op.String(), lhs, rhs)
	if err != nil {
		return nil, err
	}
	shape, err := shapeinference.BinaryOp(op, in[0].shape, in[1].shape)
	if err != nil {
		return nil, fmt.Errorf("cpu backend: %s: %w", op, err)
	}
	if _, err := binaryKernel(op, shape.DType); err != nil {
		return nil, err
	}
	return b.newNode(op, shape, nil, in[0], in[1]), nil
}

func (b *Builder) addCompare(op backends.OpType, lhs, rhs backends.Op) (backends.Op, error) {
	in, err := b.checkOps(op.String(), lhs, rhs)
	if err != nil {
		return nil, err
	}
	inferOp := op
	if op == backends.OpTypeNotEqualTotalOrder {
		inferOp = backends.OpTypeEqualTotalOrder // missing from shapeinference's set
	}
	shape, err := shapeinference.ComparisonOp(inferOp, in[0].shape, in[1].shape)
	if err != nil {
		return nil, fmt.Errorf("cpu backend: %s: %w", op, err)
	}
	if _, err := compareKernel(op, in[0].shape.DType); err != nil {
		return nil, err
	}
	return b.newNode(op, shape, nil, in[0], in[1]), nil
}

// broadcastShapes returns the shape of an elementwise op over a and b
// (scalars broadcast; otherwise equal ranks, each dim equal or 1).
func broadcastShapes(op backends.OpType, a, b shapes.Shape) (shapes.Shape, error) {
	if a.IsScalar() {
		return b.Clone(), nil
	}
	if b.IsScalar() {
		return a.Clone(), nil
	}
	if a.Rank() != b.Rank() {
		return shapes.Invalid(), fmt.Errorf("cpu backend: %s: shapes %s and %s do not broadcast", op, a, b)
	}
	out := a.Clone()
	for k := range out.Dimensions {
		da, db := a.Dimensions[k], b.Dimensions[k]
		switch {
		case da == db:
		case da == 1:
			out.Dimensions[k] = db
		case db == 1:
		default:
			return shapes.Invalid(), fmt.Errorf("cpu backend: %s: shapes %s and %s do not broadcast (axis %d)", op, a, b, k)
		}
	}
	return out, nil
}

func (b *Builder) addShift(op backends.OpType, lhs, rhs backends.Op) (backends.Op, error) {
	in, err := b.checkOps(op.String(), lhs, rhs)
	if err != nil {
		return nil, err
	}
	if in[0].shape.DType != in[1].shape.DType || !in[0].shape.DType.IsInt() {
		return nil, fmt.Errorf("cpu backend: %s: needs integer operands of the same dtype, got %s and %s", op, in[0].shape, in[1].shape)
	}
	shape, err := broadcastShapes(op, in[0].shape, in[1].shape)
	if err != nil {
		return nil, err
	}
	return b.newNode(op, shape, nil, in[0], in[1]), nil
}

// Where adds the elementwise selection onTrue if condition else onFalse.
func (b *Builder) Where(condition, onTrue, onFalse backends.Op) (backends.Op, error) {
	in, err := b.checkOps("Where", condition, onTrue, onFalse)
	if err != nil {
		return nil, err
	}
	if in[1].shape.DType != in[2].shape.DType {
		return nil, fmt.Errorf("cpu backend: Where: onTrue (%s) and onFalse (%s) dtypes differ", in[1].shape, in[2].shape)
	}
	shape, err := shapeinference.WhereOp(in[0].shape, in[1].shape, in[2].shape)
	if err != nil {
		return nil, fmt.Errorf("cpu backend: Where: %w", err)
	}
	return b.newNode(backends.OpTypeWhere, shape, nil, in...), nil
}

// Clamp adds the elementwise clamping of x to [lo, hi] (lo and hi are scalars
// or have x's shape).
func (b *Builder) Clamp(lo, x, hi backends.Op) (backends.Op, error) {
	in, err := b.checkOps("Clamp", lo, x, hi)
	if err != nil {
		return nil, err
	}
	xs := in[1].shape
	for i, n := range []*node{in[0], in[2]} {
		if n.shape.DType != xs.DType {
			return nil, fmt.Errorf("cpu backend: Clamp: bound #%d dtype %s differs from x (%s)", i, n.shape.DType, xs)
		}
		if !n.shape.IsScalar() && !n.shape.Equal(xs) {
			return nil, fmt.Errorf("cpu backend: Clamp: bound %s must be a scalar or have x's shape %s", n.shape, xs)
		}
	}
	if !xs.DType.IsFloat() && !xs.DType.IsInt() {
		return nil, fmt.Errorf("cpu backend: Clamp: needs numbers, got %s", xs)
	}
	return b.newNode(backends.OpTypeClamp, xs.Clone(), nil, in...), nil
}

// ConvertDType adds the elementwise conversion of x to dtype.
func (b *Builder) ConvertDType(x backends.Op, dtype dtypes.DType) (backends.Op, error) {
	in, err := b.checkOps("ConvertDType", x)
	if err != nil {
		return nil, err
	}
	if !isSupportedDType(dtype) {
		return nil, fmt.Errorf("cpu backend: ConvertDType: unsupported target dtype %s", dtype)
	}
	shape := in[0].shape.Clone()
	shape.DType = dtype
	if dtype == in[0].shape.DType {
		return b.newNode(backends.OpTypeIdentity, shape, nil, in[0]), nil
	}
	return b.newNode(backends.OpTypeConvertDType, shape, nil, in[0]), nil
}

// isComparison reports whether op is an elementwise comparison.
func isComparison(op backends.OpType) bool {
	return shapeinference.ComparisonOperations.Has(op) || op == backends.OpTypeNotEqualTotalOrder
}

// ewKernel returns the block function of an elementwise node.
func ewKernel(n *node) (ewFn, error) {
	switch n.op {
	case backends.OpTypeWhere:
		return whereKernel(n.shape.DType)
	case backends.OpTypeClamp:
		return clampKernel(n.shape.DType)
	case backends.OpTypeConvertDType:
		return convertKernel(n.inputs[0].shape.DType, n.shape.DType)
	case backends.OpTypeIsFinite, backends.OpTypeIsNaN:
		return unaryKernel(n.op, n.inputs[0].shape.DType)
	}
	if isComparison(n.op) {
		return compareKernel(n.op, n.inputs[0].shape.DType)
	}
	if len(n.inputs) == 2 {
		return binaryKernel(n.op, n.shape.DType)
	}
	return unaryKernel(n.op, n.shape.DType)
}

func unsupported(op backends.OpType, dt dtypes.DType) error {
	return fmt.Errorf("cpu backend: op %s not supported for dtype %s", op, dt)
}

// ---- Unary ----

func unaryKernel(op backends.OpType, dt dtypes.DType) (ewFn, error) {
	switch dt {
	case dtypes.Float32:
		return floatUnary[float32](op)
	case dtypes.Float64:
		return floatUnary[float64](op)
	case dtypes.Int8:
		return intUnary[int8](op, true)
	case dtypes.Int16:
		return intUnary[int16](op, true)
	case dtypes.Int32:
		return intUnary[int32](op, true)
	case dtypes.Int64:
		return intUnary[int64](op, true)
	case dtypes.Uint8:
		return intUnary[uint8](op, false)
	case dtypes.Uint16:
		return intUnary[uint16](op, false)
	case dtypes.Uint32:
		return intUnary[uint32](op, false)
	case dtypes.Uint64:
		return intUnary[uint64](op, false)
	case dtypes.Bool:
		if op == backends.OpTypeLogicalNot {
			return func(dst any, srcs []any) {
				d, s := asSlice[bool](dst), asSlice[bool](srcs[0])
				d = d[:len(s)]
				for i, x := range s {
					d[i] = !x
				}
			}, nil
		}
	}
	return nil, unsupported(op, dt)
}

// mapUnary wraps a per-element function (for ops costly enough that the
// indirect call does not matter).
func mapUnary[T, U any](f func(T) U) ewFn {
	return func(dst any, srcs []any) {
		d, s := asSlice[U](dst), asSlice[T](srcs[0])
		d = d[:len(s)]
		for i, x := range s {
			d[i] = f(x)
		}
	}
}

func floatUnary[T floatT](op backends.OpType) (ewFn, error) {
	switch op {
	case backends.OpTypeNeg:
		return func(dst any, srcs []any) {
			d, s := asSlice[T](dst), asSlice[T](srcs[0])
			d = d[:len(s)]
			for i, x := range s {
				d[i] = -x
			}
		}, nil
	case backends.OpTypeAbs:
		return func(dst any, srcs []any) {
			d, s := asSlice[T](dst), asSlice[T](srcs[0])
			d = d[:len(s)]
			for i, x := range s {
				d[i] = T(math.Abs(float64(x)))
			}
		}, nil
	case backends.OpTypeSqrt:
		return func(dst any, srcs []any) {
			d, s := asSlice[T](dst), asSlice[T](srcs[0])
			d = d[:len(s)]
			for i, x := range s {
				d[i] = T(math.Sqrt(float64(x)))
			}
		}, nil
	case backends.OpTypeRsqrt:
		return func(dst any, srcs []any) {
			d, s := asSlice[T](dst), asSlice[T](srcs[0])
			d = d[:len(s)]
			for i, x := range s {
				d[i] = T(1 / math.Sqrt(float64(x)))
			}
		}, nil
	case backends.OpTypeSign:
		return func(dst any, srcs []any) {
			switch d := dst.(type) {
			case []float32:
				signF32(d, asSlice[float32](srcs[0]))
			case *[]float32:
				signF32(*d, asSlice[float32](srcs[0]))
			case []float64:
				signF64(d, asSlice[float64](srcs[0]))
			case *[]float64:
				signF64(*d, asSlice[float64](srcs[0]))
			}
		}, nil
	case backends.OpTypeFloor:
		return func(dst any, srcs []any) {
			d, s := asSlice[T](dst), asSlice[T](srcs[0])
			d = d[:len(s)]
			for i, x := range s {
				d[i] = T(math.Floor(float64(x)))
			}
		}, nil
	case backends.OpTypeCeil:
		return func(dst any, srcs []any) {
			d, s := asSlice[T](dst), asSlice[T](srcs[0])
			d = d[:len(s)]
			for i, x := range s {
				d[i] = T(math.Ceil(float64(x)))
			}
		}, nil
	case backends.OpTypeRound:
		return func(dst any, srcs []any) {
			d, s := asSlice[T](dst), asSlice[T](srcs[0])
			d = d[:len(s)]
			for i, x := range s {
				d[i] = T(math.RoundToEven(float64(x)))
			}
		}, nil
	case backends.OpTypeExp:
		return mapUnary(func(x T) T { return T(math.Exp(float64(x))) }), nil
	case backends.OpTypeExpm1:
		return mapUnary(func(x T) T { return T(math.Expm1(float64(x))) }), nil
	case backends.OpTypeLog:
		return mapUnary(func(x T) T { return T(math.Log(float64(x))) }), nil
	case backends.OpTypeLog1p:
		return mapUnary(func(x T) T { return T(math.Log1p(float64(x))) }), nil
	case backends.OpTypeLogistic:
		return mapUnary(func(x T) T {
			v := float64(x)
			if v >= 0 {
				return T(1 / (1 + math.Exp(-v)))
			}
			e := math.Exp(v)
			return T(e / (1 + e))
		}), nil
	case backends.OpTypeTanh:
		return mapUnary(func(x T) T { return T(math.Tanh(float64(x))) }), nil
	case backends.OpTypeCos:
		return mapUnary(func(x T) T { return T(math.Cos(float64(x))) }), nil
	case backends.OpTypeSin:
		return mapUnary(func(x T) T { return T(math.Sin(float64(x))) }), nil
	case backends.OpTypeErf:
		return mapUnary(func(x T) T { return T(math.Erf(float64(x))) }), nil
	case backends.OpTypeIsFinite:
		return func(dst any, srcs []any) {
			d, s := asSlice[bool](dst), asSlice[T](srcs[0])
			d = d[:len(s)]
			for i, x := range s {
				d[i] = x-x == 0 // false for ±Inf and NaN
			}
		}, nil
	case backends.OpTypeIsNaN:
		return func(dst any, srcs []any) {
			d, s := asSlice[bool](dst), asSlice[T](srcs[0])
			d = d[:len(s)]
			for i, x := range s {
				d[i] = x != x
			}
		}, nil
	}
	var z T
	return nil, unsupported(op, dtypes.FromAny(z))
}

// intWidth returns the bit width of T.
func intWidth[T intT]() int {
	var z T
	return int(unsafe.Sizeof(z)) * 8
}

func intUnary[T intT](op backends.OpType, signed bool) (ewFn, error) {
	w := intWidth[T]()
	mask := uint64(math.MaxUint64) >> (64 - w)
	switch op {
	case backends.OpTypeNeg:
		if signed {
			return mapUnary(func(x T) T { return -x }), nil
		}
	case backends.OpTypeAbs:
		return mapUnary(func(x T) T {
			if signed && x < 0 {
				return -x
			}
			return x
		}), nil
	case backends.OpTypeSign:
		return mapUnary(func(x T) T {
			switch {
			case x > 0:
				return 1
			case signed && x < 0:
				var one T = 1
				return -one // only reached for signed types
			}
			return 0
		}), nil
	case backends.OpTypeBitwiseNot:
		return mapUnary(func(x T) T { return ^x }), nil
	case backends.OpTypeBitCount:
		return mapUnary(func(x T) T { return T(bits.OnesCount64(uint64(x) & mask)) }), nil
	case backends.OpTypeClz:
		return mapUnary(func(x T) T { return T(bits.LeadingZeros64(uint64(x)&mask) - (64 - w)) }), nil
	}
	var z T
	return nil, unsupported(op, dtypes.FromAny(z))
}

// ---- Binary ----

func binaryKernel(op backends.OpType, dt dtypes.DType) (ewFn, error) {
	switch dt {
	case dtypes.Float32:
		return floatBinary[float32](op)
	case dtypes.Float64:
		return floatBinary[float64](op)
	case dtypes.Int8:
		return intBinary[int8](op, true)
	case dtypes.Int16:
		return intBinary[int16](op, true)
	case dtypes.Int32:
		return intBinary[int32](op, true)
	case dtypes.Int64:
		return intBinary[int64](op, true)
	case dtypes.Uint8:
		return intBinary[uint8](op, false)
	case dtypes.Uint16:
		return intBinary[uint16](op, false)
	case dtypes.Uint32:
		return intBinary[uint32](op, false)
	case dtypes.Uint64:
		return intBinary[uint64](op, false)
	case dtypes.Bool:
		return boolBinary(op)
	}
	return nil, unsupported(op, dt)
}

func mapBinary[T, U any](f func(a, b T) U) ewFn {
	return func(dst any, srcs []any) {
		d, a, b := asSlice[U](dst), asSlice[T](srcs[0]), asSlice[T](srcs[1])
		d = d[:len(a)]
		b = b[:len(a)]
		for i := range a {
			d[i] = f(a[i], b[i])
		}
	}
}

// numBinary returns the loops shared by all number types.
func numBinary[T numT](op backends.OpType) ewFn {
	switch op {
	case backends.OpTypeAdd:
		return func(dst any, srcs []any) {
			d, a, b := asSlice[T](dst), asSlice[T](srcs[0]), asSlice[T](srcs[1])
			d, b = d[:len(a)], b[:len(a)]
			for i := range a {
				d[i] = a[i] + b[i]
			}
		}
	case backends.OpTypeSub:
		return func(dst any, srcs []any) {
			d, a, b := asSlice[T](dst), asSlice[T](srcs[0]), asSlice[T](srcs[1])
			d, b = d[:len(a)], b[:len(a)]
			for i := range a {
				d[i] = a[i] - b[i]
			}
		}
	case backends.OpTypeMul:
		return func(dst any, srcs []any) {
			d, a, b := asSlice[T](dst), asSlice[T](srcs[0]), asSlice[T](srcs[1])
			d, b = d[:len(a)], b[:len(a)]
			for i := range a {
				d[i] = a[i] * b[i]
			}
		}
	case backends.OpTypeMax:
		return func(dst any, srcs []any) {
			d, a, b := asSlice[T](dst), asSlice[T](srcs[0]), asSlice[T](srcs[1])
			d, b = d[:len(a)], b[:len(a)]
			for i := range a {
				d[i] = max(a[i], b[i])
			}
		}
	case backends.OpTypeMin:
		return func(dst any, srcs []any) {
			d, a, b := asSlice[T](dst), asSlice[T](srcs[0]), asSlice[T](srcs[1])
			d, b = d[:len(a)], b[:len(a)]
			for i := range a {
				d[i] = min(a[i], b[i])
			}
		}
	}
	return nil
}

func floatBinary[T floatT](op backends.OpType) (ewFn, error) {
	var z T
	if _, f32 := any(z).(float32); f32 && op == backends.OpTypeAdd {
		// The residual blocks' gradient sums, vectorised.
		return func(dst any, srcs []any) {
			a := asSlice[float32](srcs[0])
			d, b := asSlice[float32](dst)[:len(a)], asSlice[float32](srcs[1])[:len(a)]
			if err := kernels.AddF32(d, a, b); err != nil {
				panic(err)
			}
		}, nil
	}
	if fn := numBinary[T](op); fn != nil {
		return fn, nil
	}
	switch op {
	case backends.OpTypeDiv:
		return func(dst any, srcs []any) {
			d, a, b := asSlice[T](dst), asSlice[T](srcs[0]), asSlice[T](srcs[1])
			d, b = d[:len(a)], b[:len(a)]
			for i := range a {
				d[i] = a[i] / b[i]
			}
		}, nil
	case backends.OpTypePow:
		return mapBinary(func(a, b T) T { return T(math.Pow(float64(a), float64(b))) }), nil
	case backends.OpTypeRem:
		return mapBinary(func(a, b T) T { return T(math.Mod(float64(a), float64(b))) }), nil
	}
	return nil, unsupported(op, dtypes.FromAny(z))
}

func intBinary[T intT](op backends.OpType, signed bool) (ewFn, error) {
	if fn := numBinary[T](op); fn != nil {
		return fn, nil
	}
	w := intWidth[T]()
	var allOnes T = ^T(0)
	switch op {
	case backends.OpTypeDiv:
		// XLA semantics: x/0 is all ones (-1 when signed); MinInt/-1 is MinInt.
		return mapBinary(func(a, b T) T {
			if b == 0 {
				return allOnes
			}
			if signed && b == allOnes {
				return 0 - a
			}
			return a / b
		}), nil
	case backends.OpTypeRem:
		// x%0 is x; MinInt % -1 is 0.
		return mapBinary(func(a, b T) T {
			if b == 0 {
				return a
			}
			if signed && b == allOnes {
				return 0
			}
			return a % b
		}), nil
	case backends.OpTypePow:
		return mapBinary(func(a, b T) T { return intPow(a, b, signed) }), nil
	case backends.OpTypeBitwiseAnd:
		return mapBinary(func(a, b T) T { return a & b }), nil
	case backends.OpTypeBitwiseOr:
		return mapBinary(func(a, b T) T { return a | b }), nil
	case backends.OpTypeBitwiseXor:
		return mapBinary(func(a, b T) T { return a ^ b }), nil
	case backends.OpTypeShiftLeft:
		return mapBinary(func(a, b T) T {
			if uint64(b) >= uint64(w) {
				return 0
			}
			return a << uint64(b)
		}), nil
	case backends.OpTypeShiftRightLogical:
		mask := uint64(math.MaxUint64) >> (64 - w)
		return mapBinary(func(a, b T) T {
			if uint64(b) >= uint64(w) {
				return 0
			}
			return T((uint64(a) & mask) >> uint64(b))
		}), nil
	case backends.OpTypeShiftRightArithmetic:
		return mapBinary(func(a, b T) T {
			if uint64(b) >= uint64(w) {
				if signed && a < 0 {
					return allOnes
				}
				return 0
			}
			return a >> uint64(b)
		}), nil
	}
	var z T
	return nil, unsupported(op, dtypes.FromAny(z))
}

// intPow computes a**b by squaring; negative exponents give 0 unless |a| is 1.
func intPow[T intT](a, b T, signed bool) T {
	if signed && b < 0 {
		switch {
		case a == 1:
			return 1
		case a == ^T(0): // -1
			if b&1 == 0 {
				return 1
			}
			return a
		}
		return 0
	}
	r := T(1)
	for b != 0 {
		if b&1 != 0 {
			r *= a
		}
		a *= a
		b >>= 1
	}
	return r
}

func boolBinary(op backends.OpType) (ewFn, error) {
	switch op {
	case backends.OpTypeLogicalAnd:
		return mapBinary(func(a, b bool) bool { return a && b }), nil
	case backends.OpTypeLogicalOr:
		return mapBinary(func(a, b bool) bool { return a || b }), nil
	case backends.OpTypeLogicalXor:
		return mapBinary(func(a, b bool) bool { return a != b }), nil
	}
	return nil, unsupported(op, dtypes.Bool)
}

// ---- Comparisons ----

func compareKernel(op backends.OpType, dt dtypes.DType) (ewFn, error) {
	switch dt {
	case dtypes.Float32:
		return floatCompare[float32](op)
	case dtypes.Float64:
		return floatCompare[float64](op)
	case dtypes.Int8:
		return numCompare[int8](op)
	case dtypes.Int16:
		return numCompare[int16](op)
	case dtypes.Int32:
		return numCompare[int32](op)
	case dtypes.Int64:
		return numCompare[int64](op)
	case dtypes.Uint8:
		return numCompare[uint8](op)
	case dtypes.Uint16:
		return numCompare[uint16](op)
	case dtypes.Uint32:
		return numCompare[uint32](op)
	case dtypes.Uint64:
		return numCompare[uint64](op)
	case dtypes.BFloat16:
		return bf16Compare(op)
	case dtypes.Bool:
		switch op {
		case backends.OpTypeEqual, backends.OpTypeEqualTotalOrder:
			return mapBinary(func(a, b bool) bool { return a == b }), nil
		case backends.OpTypeNotEqual, backends.OpTypeNotEqualTotalOrder:
			return mapBinary(func(a, b bool) bool { return a != b }), nil
		}
	}
	return nil, unsupported(op, dt)
}

// cmpLoops returns the comparison loop on keys of type K derived from T.
func cmpLoops[T any, K numT](op backends.OpType, key func(T) K) ewFn {
	var f func(a, b K) bool
	switch op {
	case backends.OpTypeEqual, backends.OpTypeEqualTotalOrder:
		f = func(a, b K) bool { return a == b }
	case backends.OpTypeNotEqual, backends.OpTypeNotEqualTotalOrder:
		f = func(a, b K) bool { return a != b }
	case backends.OpTypeGreaterOrEqual, backends.OpTypeGreaterOrEqualTotalOrder:
		f = func(a, b K) bool { return a >= b }
	case backends.OpTypeGreaterThan, backends.OpTypeGreaterThanTotalOrder:
		f = func(a, b K) bool { return a > b }
	case backends.OpTypeLessOrEqual, backends.OpTypeLessOrEqualTotalOrder:
		f = func(a, b K) bool { return a <= b }
	case backends.OpTypeLessThan, backends.OpTypeLessThanTotalOrder:
		f = func(a, b K) bool { return a < b }
	default:
		return nil
	}
	return mapBinary(func(a, b T) bool { return f(key(a), key(b)) })
}

func numCompare[T numT](op backends.OpType) (ewFn, error) {
	if fn := cmpLoops(op, func(x T) T { return x }); fn != nil {
		return fn, nil
	}
	var z T
	return nil, unsupported(op, dtypes.FromAny(z))
}

// totalOrderKey maps a float to an integer whose order is IEEE total order:
// -NaN < -Inf < ... < -0 < +0 < ... < +Inf < +NaN.
func totalOrderKey[T floatT](x T) int64 {
	if unsafe.Sizeof(x) == 4 {
		k := int32(math.Float32bits(float32(x)))
		if k < 0 {
			k ^= math.MaxInt32
		}
		return int64(k)
	}
	k := int64(math.Float64bits(float64(x)))
	if k < 0 {
		k ^= math.MaxInt64
	}
	return k
}

func floatCompare[T floatT](op backends.OpType) (ewFn, error) {
	switch op {
	case backends.OpTypeEqualTotalOrder, backends.OpTypeNotEqualTotalOrder, backends.OpTypeGreaterOrEqualTotalOrder,
		backends.OpTypeGreaterThanTotalOrder, backends.OpTypeLessOrEqualTotalOrder, backends.OpTypeLessThanTotalOrder:
		return cmpLoops(op, totalOrderKey[T]), nil
	}
	switch op {
	case backends.OpTypeGreaterThan:
		return func(dst any, srcs []any) {
			d, a, b := asSlice[bool](dst), asSlice[T](srcs[0]), asSlice[T](srcs[1])
			d, b = d[:len(a)], b[:len(a)]
			for i := range a {
				d[i] = a[i] > b[i]
			}
		}, nil
	case backends.OpTypeGreaterOrEqual:
		return func(dst any, srcs []any) {
			d, a, b := asSlice[bool](dst), asSlice[T](srcs[0]), asSlice[T](srcs[1])
			d, b = d[:len(a)], b[:len(a)]
			for i := range a {
				d[i] = a[i] >= b[i]
			}
		}, nil
	case backends.OpTypeEqual:
		return func(dst any, srcs []any) {
			d, a, b := asSlice[bool](dst), asSlice[T](srcs[0]), asSlice[T](srcs[1])
			d, b = d[:len(a)], b[:len(a)]
			for i := range a {
				d[i] = a[i] == b[i]
			}
		}, nil
	}
	return numCompare[T](op)
}

// ---- Where, Clamp, ConvertDType ----

func whereKernel(dt dtypes.DType) (ewFn, error) {
	switch dt {
	case dtypes.Float32:
		return whereT[float32](), nil
	case dtypes.Float64:
		return whereT[float64](), nil
	case dtypes.Bool:
		return whereT[bool](), nil
	case dtypes.Int8:
		return whereT[int8](), nil
	case dtypes.Int16:
		return whereT[int16](), nil
	case dtypes.Int32:
		return whereT[int32](), nil
	case dtypes.Int64:
		return whereT[int64](), nil
	case dtypes.Uint8:
		return whereT[uint8](), nil
	case dtypes.Uint16:
		return whereT[uint16](), nil
	case dtypes.Uint32:
		return whereT[uint32](), nil
	case dtypes.Uint64:
		return whereT[uint64](), nil
	case dtypes.BFloat16:
		return whereT[bfloat16.BFloat16](), nil
	}
	return nil, unsupported(backends.OpTypeWhere, dt)
}

func whereT[T anyElem]() ewFn {
	return func(dst any, srcs []any) {
		d, c, a, b := asSlice[T](dst), asSlice[bool](srcs[0]), asSlice[T](srcs[1]), asSlice[T](srcs[2])
		d, a, b = d[:len(c)], a[:len(c)], b[:len(c)]
		for i, ci := range c {
			if ci {
				d[i] = a[i]
			} else {
				d[i] = b[i]
			}
		}
	}
}

func clampKernel(dt dtypes.DType) (ewFn, error) {
	switch dt {
	case dtypes.Float32:
		return clampT[float32](), nil
	case dtypes.Float64:
		return clampT[float64](), nil
	case dtypes.Int8:
		return clampT[int8](), nil
	case dtypes.Int16:
		return clampT[int16](), nil
	case dtypes.Int32:
		return clampT[int32](), nil
	case dtypes.Int64:
		return clampT[int64](), nil
	case dtypes.Uint8:
		return clampT[uint8](), nil
	case dtypes.Uint16:
		return clampT[uint16](), nil
	case dtypes.Uint32:
		return clampT[uint32](), nil
	case dtypes.Uint64:
		return clampT[uint64](), nil
	}
	return nil, unsupported(backends.OpTypeClamp, dt)
}

func clampT[T numT]() ewFn {
	return func(dst any, srcs []any) {
		d, lo, x, hi := asSlice[T](dst), asSlice[T](srcs[0]), asSlice[T](srcs[1]), asSlice[T](srcs[2])
		d, lo, hi = d[:len(x)], lo[:len(x)], hi[:len(x)]
		for i := range x {
			d[i] = min(max(x[i], lo[i]), hi[i])
		}
	}
}

func convertKernel(from, to dtypes.DType) (ewFn, error) {
	if from == dtypes.BFloat16 || to == dtypes.BFloat16 {
		return convertBF16Kernel(from, to)
	}
	switch from {
	case dtypes.Float32:
		return convertFrom[float32](to)
	case dtypes.Float64:
		return convertFrom[float64](to)
	case dtypes.Int8:
		return convertFrom[int8](to)
	case dtypes.Int16:
		return convertFrom[int16](to)
	case dtypes.Int32:
		return convertFrom[int32](to)
	case dtypes.Int64:
		return convertFrom[int64](to)
	case dtypes.Uint8:
		return convertFrom[uint8](to)
	case dtypes.Uint16:
		return convertFrom[uint16](to)
	case dtypes.Uint32:
		return convertFrom[uint32](to)
	case dtypes.Uint64:
		return convertFrom[uint64](to)
	case dtypes.Bool:
		switch to {
		case dtypes.Float32:
			return fromBool[float32](), nil
		case dtypes.Float64:
			return fromBool[float64](), nil
		case dtypes.Int8:
			return fromBool[int8](), nil
		case dtypes.Int16:
			return fromBool[int16](), nil
		case dtypes.Int32:
			return fromBool[int32](), nil
		case dtypes.Int64:
			return fromBool[int64](), nil
		case dtypes.Uint8:
			return fromBool[uint8](), nil
		case dtypes.Uint16:
			return fromBool[uint16](), nil
		case dtypes.Uint32:
			return fromBool[uint32](), nil
		case dtypes.Uint64:
			return fromBool[uint64](), nil
		case dtypes.Bool:
			return mapUnary(func(x bool) bool { return x }), nil
		}
	}
	return nil, fmt.Errorf("cpu backend: ConvertDType from %s to %s not supported", from, to)
}

func fromBool[T numT]() ewFn {
	return mapUnary(func(x bool) T {
		if x {
			return 1
		}
		return 0
	})
}

func convertFrom[F numT](to dtypes.DType) (ewFn, error) {
	var z F
	isFloat := dtypes.FromAny(z).IsFloat()
	switch to {
	case dtypes.Float32:
		return convertLoop[F, float32](), nil
	case dtypes.Float64:
		return convertLoop[F, float64](), nil
	case dtypes.Int8:
		return convertToInt[F, int8](isFloat), nil
	case dtypes.Int16:
		return convertToInt[F, int16](isFloat), nil
	case dtypes.Int32:
		return convertToInt[F, int32](isFloat), nil
	case dtypes.Int64:
		return convertToInt[F, int64](isFloat), nil
	case dtypes.Uint8:
		return convertToInt[F, uint8](isFloat), nil
	case dtypes.Uint16:
		return convertToInt[F, uint16](isFloat), nil
	case dtypes.Uint32:
		return convertToInt[F, uint32](isFloat), nil
	case dtypes.Uint64:
		return convertToInt[F, uint64](isFloat), nil
	case dtypes.Bool:
		return mapUnary(func(x F) bool { return x != 0 }), nil
	}
	return nil, fmt.Errorf("cpu backend: ConvertDType from %s to %s not supported", dtypes.FromAny(z), to)
}

func convertLoop[F, T numT]() ewFn {
	return func(dst any, srcs []any) {
		d, s := asSlice[T](dst), asSlice[F](srcs[0])
		d = d[:len(s)]
		for i, x := range s {
			d[i] = T(x)
		}
	}
}

// convertToInt converts to an integer type; floats are truncated towards
// zero and saturated to the type's range, NaN gives 0.
func convertToInt[F numT, T intT](fromFloat bool) ewFn {
	if !fromFloat {
		return convertLoop[F, T]()
	}
	toInt := floatToInt[T]()
	return mapUnary(func(x F) T { return toInt(float64(x)) })
}

// floatToInt returns the conversion of a float to the integer type T:
// truncated towards zero, saturated to T's range, NaN gives 0.
func floatToInt[T intT]() func(v float64) T {
	var z T
	lo, hi := intRange(dtypes.FromAny(z))
	top := maxOfInt[T]()
	return func(v float64) T {
		switch {
		case v != v:
			return 0
		case v <= lo:
			return T(lo)
		case v >= hi:
			return top
		}
		return T(v)
	}
}

// intRange returns the range of an integer dtype as float64 (hi is the first
// value above the range for 64-bit types).
func intRange(dt dtypes.DType) (lo, hi float64) {
	w := dt.Size() * 8
	if dt.IsUnsigned() {
		return 0, math.Ldexp(1, w) - 1
	}
	return -math.Ldexp(1, w-1), math.Ldexp(1, w-1) - 1
}

func maxOfInt[T intT]() T {
	var z T
	if ^z > z { // unsigned: all ones
		return ^z
	}
	// signed: all ones except the sign bit.
	return T(uint64(math.MaxUint64) >> (65 - intWidth[T]()))
}

// signF32 computes Sign branchlessly (GoMLX's ReLU gradient applies Sign to
// data that is half zeros, where branches mispredict): ±1 with x's sign,
// except ±0 and NaN, which are returned unchanged.
func signF32(d, s []float32) {
	d = d[:len(s)]
	for i, x := range s {
		b := math.Float32bits(x)
		abs := b & 0x7fffffff
		// keep is all ones when x is ±0 (abs-1 wraps) or NaN (abs above
		// the infinity pattern), computed without branches.
		keep := -((abs-1)>>31 | (0x7f800000-abs)>>31)
		one := b&0x80000000 | 0x3f800000
		d[i] = math.Float32frombits(b&keep | one&^keep)
	}
}

// signF64 is signF32 for float64.
func signF64(d, s []float64) {
	d = d[:len(s)]
	for i, x := range s {
		b := math.Float64bits(x)
		abs := b & 0x7fffffffffffffff
		keep := -((abs-1)>>63 | (0x7ff0000000000000-abs)>>63)
		one := b&0x8000000000000000 | 0x3ff0000000000000
		d[i] = math.Float64frombits(b&keep | one&^keep)
	}
}

// nonNegIndicatorKernel computes Sign(Sign(y)+1) in one pass: 1 where y >= 0
// (including -0), 0 where y < 0, NaN (y itself) where y is NaN.
func nonNegIndicatorKernel(dt dtypes.DType) (ewFn, error) {
	switch dt {
	case dtypes.Float32:
		return func(dst any, srcs []any) {
			d, s := asSlice[float32](dst), asSlice[float32](srcs[0])
			d = d[:len(s)]
			for i, y := range s {
				d[i] = kernels.NonNegIndicatorF32(y)
			}
		}, nil
	case dtypes.Float64:
		return func(dst any, srcs []any) {
			d, s := asSlice[float64](dst), asSlice[float64](srcs[0])
			d = d[:len(s)]
			for i, y := range s {
				d[i] = kernels.NonNegIndicatorF64(y)
			}
		}, nil
	}
	return nil, unsupported(backends.OpTypeSign, dt)
}

// maskedMulKernel computes g * NonNegativeIndicator(y) (see
// nonNegIndicatorKernel) in one loop: srcs are g and y.
func maskedMulKernel(dt dtypes.DType) (ewFn, error) {
	switch dt {
	case dtypes.Float32:
		return func(dst any, srcs []any) {
			s := asSlice[float32](srcs[1])
			d, g := asSlice[float32](dst)[:len(s)], asSlice[float32](srcs[0])[:len(s)]
			if err := kernels.MulNonNegF32(d, g, s); err != nil {
				panic(err)
			}
		}, nil
	case dtypes.Float64:
		return func(dst any, srcs []any) {
			d, g, s := asSlice[float64](dst), asSlice[float64](srcs[0]), asSlice[float64](srcs[1])
			d, g = d[:len(s)], g[:len(s)]
			for i, y := range s {
				d[i] = g[i] * kernels.NonNegIndicatorF64(y)
			}
		}, nil
	}
	return nil, unsupported(backends.OpTypeMul, dt)
}
