package cpu

import (
	"fmt"
	"math"
	"math/big"
	"slices"
	"strings"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/pkg/core/dtypes"
	"github.com/gomlx/gomlx/pkg/core/dtypes/bfloat16"
)

// BFloat16.
//
// The backend stores BFloat16 tensors ([]bfloat16.BFloat16: buffers,
// parameters, constants, outputs) and moves them through the data-movement
// ops of bf16Ops. Its only arithmetic is ConvertDType to and from every
// other dtype: to BFloat16 it rounds to nearest, ties to even (NaN stays a
// quiet NaN, overflow gives ±Inf), from BFloat16 it is exact for floats and
// truncates and saturates for integers, as for other floats. That is what
// GoMLX's RandomUniform in BFloat16 needs (float32 values converted).
// Comparisons (IEEE, and total order for the TotalOrder variants) compare
// the float32 values, which are exact. Every other op refuses a BFloat16
// operand when the graph is built, with an error naming the op and the
// dtype.

// bf16Ops are the ops (by name, as given to checkOps) accepting BFloat16
// operands.
var bf16Ops = map[string]bool{
	"Identity": true, "Reshape": true, "ConvertDType": true, "Compile": true,
	"BroadcastInDim": true, "Transpose": true, "Slice": true, "Reverse": true,
	"Concatenate": true, "Pad": true, "DynamicSlice": true, "DynamicUpdateSlice": true,
	"Gather": true, "Where": true,
	"Equal": true, "NotEqual": true, "GreaterOrEqual": true, "GreaterThan": true,
	"LessOrEqual": true, "LessThan": true, "EqualTotalOrder": true, "NotEqualTotalOrder": true,
	"GreaterOrEqualTotalOrder": true, "GreaterThanTotalOrder": true,
	"LessOrEqualTotalOrder": true, "LessThanTotalOrder": true,
}

// bf16Error returns the error for op opName given a BFloat16 operand or
// result.
func bf16Error(opName string) error {
	names := make([]string, 0, len(bf16Ops))
	for n := range bf16Ops {
		if n != "Compile" {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	return fmt.Errorf("cpu backend: %s: dtype %s is not supported for this op; the cpu backend stores %s and supports it only in Parameter, Constant, RNGBitGenerator, %s (compute in Float32 and convert)",
		opName, dtypes.BFloat16, dtypes.BFloat16, strings.Join(names, ", "))
}

// bf16FromFloat32 rounds x to the nearest BFloat16, ties to even; NaN
// stays NaN (quiet, same sign) and values beyond the largest BFloat16 round
// to ±Inf.
func bf16FromFloat32(x float32) bfloat16.BFloat16 {
	b := math.Float32bits(x)
	if b&0x7fffffff > 0x7f800000 {
		return bfloat16.BFloat16(b>>16 | 0x40)
	}
	// Adding 0x7fff, plus 1 when the kept part is odd, carries into the
	// kept part exactly when the dropped part is above half, or half with
	// an odd kept part (the carry also steps the exponent, up to Inf).
	return bfloat16.BFloat16((b + 0x7fff + (b>>16)&1) >> 16)
}

// bf16FromFloat64 rounds x to the nearest BFloat16, ties to even, with a
// single rounding: x is first rounded to float32 by rounding to odd (the
// float32 next to x towards zero, its last bit set when inexact), which
// keeps the information the second rounding needs since float32 has more
// than 8+2 significant bits (and the same exponent range).
func bf16FromFloat64(x float64) bfloat16.BFloat16 {
	f := float32(x)
	if float64(f) != x && x == x {
		if math.Abs(float64(f)) > math.Abs(x) {
			f = math.Nextafter32(f, 0)
		}
		f = math.Float32frombits(math.Float32bits(f) | 1)
	}
	return bf16FromFloat32(f)
}

// bf16FromInt64 rounds v to the nearest BFloat16, ties to even.
func bf16FromInt64(v int64) bfloat16.BFloat16 {
	if v >= -1<<53 && v <= 1<<53 {
		return bf16FromFloat64(float64(v)) // exact in float64
	}
	f, _ := new(big.Float).SetPrec(8).SetMode(big.ToNearestEven).SetInt64(v).Float32()
	return bf16FromFloat32(f) // f has 8 significant bits: exact
}

// bf16FromUint64 rounds v to the nearest BFloat16, ties to even.
func bf16FromUint64(v uint64) bfloat16.BFloat16 {
	if v <= 1<<53 {
		return bf16FromFloat64(float64(v))
	}
	f, _ := new(big.Float).SetPrec(8).SetMode(big.ToNearestEven).SetUint64(v).Float32()
	return bf16FromFloat32(f)
}

// convertBF16Kernel returns the conversion from or to BFloat16.
func convertBF16Kernel(from, to dtypes.DType) (ewFn, error) {
	type bf = bfloat16.BFloat16
	if from == dtypes.BFloat16 {
		switch to {
		case dtypes.Float32:
			return func(dst any, srcs []any) {
				d, s := asSlice[float32](dst), asSlice[bf](srcs[0])
				d = d[:len(s)]
				for i, x := range s {
					d[i] = x.Float32()
				}
			}, nil
		case dtypes.Float64:
			return mapUnary(func(x bf) float64 { return float64(x.Float32()) }), nil
		case dtypes.Int8:
			return bf16ToInt[int8](), nil
		case dtypes.Int16:
			return bf16ToInt[int16](), nil
		case dtypes.Int32:
			return bf16ToInt[int32](), nil
		case dtypes.Int64:
			return bf16ToInt[int64](), nil
		case dtypes.Uint8:
			return bf16ToInt[uint8](), nil
		case dtypes.Uint16:
			return bf16ToInt[uint16](), nil
		case dtypes.Uint32:
			return bf16ToInt[uint32](), nil
		case dtypes.Uint64:
			return bf16ToInt[uint64](), nil
		case dtypes.Bool:
			return mapUnary(func(x bf) bool { return x.Float32() != 0 }), nil
		}
	} else {
		switch from {
		case dtypes.Float32:
			return func(dst any, srcs []any) {
				d, s := asSlice[bf](dst), asSlice[float32](srcs[0])
				d = d[:len(s)]
				for i, x := range s {
					d[i] = bf16FromFloat32(x)
				}
			}, nil
		case dtypes.Float64:
			return mapUnary(bf16FromFloat64), nil
		case dtypes.Int8:
			return exactToBF16[int8](), nil
		case dtypes.Int16:
			return exactToBF16[int16](), nil
		case dtypes.Int32:
			return exactToBF16[int32](), nil
		case dtypes.Int64:
			return mapUnary(bf16FromInt64), nil
		case dtypes.Uint8:
			return exactToBF16[uint8](), nil
		case dtypes.Uint16:
			return exactToBF16[uint16](), nil
		case dtypes.Uint32:
			return exactToBF16[uint32](), nil
		case dtypes.Uint64:
			return mapUnary(bf16FromUint64), nil
		case dtypes.Bool:
			one := bf16FromFloat32(1)
			return mapUnary(func(x bool) bf {
				if x {
					return one
				}
				return 0
			}), nil
		}
	}
	return nil, fmt.Errorf("cpu backend: ConvertDType from %s to %s not supported", from, to)
}

// exactToBF16 converts integers exactly representable in float64 (all of
// 32 bits or fewer).
func exactToBF16[T int8 | int16 | int32 | uint8 | uint16 | uint32]() ewFn {
	return mapUnary(func(x T) bfloat16.BFloat16 { return bf16FromFloat64(float64(x)) })
}

// bf16ToInt converts to an integer type like other floats: truncated
// towards zero, saturated to the type's range, NaN gives 0.
func bf16ToInt[T intT]() ewFn {
	toInt := floatToInt[T]()
	return mapUnary(func(x bfloat16.BFloat16) T { return toInt(float64(x.Float32())) })
}

// bf16Compare returns the comparison op on BFloat16 operands, through their
// (exact) float32 values.
func bf16Compare(op backends.OpType) (ewFn, error) {
	type bf = bfloat16.BFloat16
	switch op {
	case backends.OpTypeEqualTotalOrder, backends.OpTypeNotEqualTotalOrder, backends.OpTypeGreaterOrEqualTotalOrder,
		backends.OpTypeGreaterThanTotalOrder, backends.OpTypeLessOrEqualTotalOrder, backends.OpTypeLessThanTotalOrder:
		return cmpLoops(op, func(x bf) int64 { return totalOrderKey(x.Float32()) }), nil
	}
	if fn := cmpLoops(op, func(x bf) float32 { return x.Float32() }); fn != nil {
		return fn, nil
	}
	return nil, unsupported(op, dtypes.BFloat16)
}
