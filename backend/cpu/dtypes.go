package cpu

import (
	"fmt"
	"reflect"
	"unsafe"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	"github.com/gomlx/gomlx/pkg/core/dtypes/bfloat16"
)

// supportedDTypes lists the data types this backend stores. All of them
// compute in every op that makes sense for them, except BFloat16, which only
// the ops of bf16Ops accept (see bf16.go).
var supportedDTypes = []dtypes.DType{
	dtypes.Bool,
	dtypes.Int8, dtypes.Int16, dtypes.Int32, dtypes.Int64,
	dtypes.Uint8, dtypes.Uint16, dtypes.Uint32, dtypes.Uint64,
	dtypes.Float32, dtypes.Float64, dtypes.BFloat16,
}

// Type-parameter constraints used by the generic kernels of this package.
type (
	floatT interface{ ~float32 | ~float64 }
	sintT  interface {
		~int8 | ~int16 | ~int32 | ~int64
	}
	uintT interface {
		~uint8 | ~uint16 | ~uint32 | ~uint64
	}
	intT    interface{ sintT | uintT }
	numT    interface{ floatT | intT }
	anyElem interface{ numT | ~bool }
)

func isSupportedDType(dt dtypes.DType) bool {
	for _, s := range supportedDTypes {
		if s == dt {
			return true
		}
	}
	return false
}

// makeSlice allocates a zeroed typed slice of n elements of dtype dt.
func makeSlice(dt dtypes.DType, n int) any {
	switch dt {
	case dtypes.Bool:
		return make([]bool, n)
	case dtypes.Int8:
		return make([]int8, n)
	case dtypes.Int16:
		return make([]int16, n)
	case dtypes.Int32:
		return make([]int32, n)
	case dtypes.Int64:
		return make([]int64, n)
	case dtypes.Uint8:
		return make([]uint8, n)
	case dtypes.Uint16:
		return make([]uint16, n)
	case dtypes.Uint32:
		return make([]uint32, n)
	case dtypes.Uint64:
		return make([]uint64, n)
	case dtypes.Float32:
		return make([]float32, n)
	case dtypes.Float64:
		return make([]float64, n)
	case dtypes.BFloat16:
		return make([]bfloat16.BFloat16, n)
	}
	panic(fmt.Sprintf("cpu backend: unsupported dtype %s", dt))
}

// viewAs reinterprets the memory of mem (8-byte aligned) as a typed slice of n
// elements of dtype dt. The caller guarantees len(mem)*8 >= n*dt.Size().
func viewAs(dt dtypes.DType, mem []uint64, n int) any {
	if n == 0 || len(mem) == 0 {
		return makeSlice(dt, 0)
	}
	p := unsafe.Pointer(&mem[0])
	switch dt {
	case dtypes.Bool:
		return unsafe.Slice((*bool)(p), n)
	case dtypes.Int8:
		return unsafe.Slice((*int8)(p), n)
	case dtypes.Int16:
		return unsafe.Slice((*int16)(p), n)
	case dtypes.Int32:
		return unsafe.Slice((*int32)(p), n)
	case dtypes.Int64:
		return unsafe.Slice((*int64)(p), n)
	case dtypes.Uint8:
		return unsafe.Slice((*uint8)(p), n)
	case dtypes.Uint16:
		return unsafe.Slice((*uint16)(p), n)
	case dtypes.Uint32:
		return unsafe.Slice((*uint32)(p), n)
	case dtypes.Uint64:
		return unsafe.Slice((*uint64)(p), n)
	case dtypes.Float32:
		return unsafe.Slice((*float32)(p), n)
	case dtypes.Float64:
		return unsafe.Slice((*float64)(p), n)
	case dtypes.BFloat16:
		return unsafe.Slice((*bfloat16.BFloat16)(p), n)
	}
	panic(fmt.Sprintf("cpu backend: unsupported dtype %s", dt))
}

// subSlice returns flat[lo:hi] for a typed slice held in an interface.
func subSlice(flat any, lo, hi int) any {
	switch s := flat.(type) {
	case []float32:
		return s[lo:hi]
	case []float64:
		return s[lo:hi]
	case []bool:
		return s[lo:hi]
	case []int8:
		return s[lo:hi]
	case []int16:
		return s[lo:hi]
	case []int32:
		return s[lo:hi]
	case []int64:
		return s[lo:hi]
	case []uint8:
		return s[lo:hi]
	case []uint16:
		return s[lo:hi]
	case []uint32:
		return s[lo:hi]
	case []uint64:
		return s[lo:hi]
	case []bfloat16.BFloat16:
		return s[lo:hi]
	}
	panic(fmt.Sprintf("cpu backend: unsupported flat type %T", flat))
}

// copyFlat copies src into dst (same element type).
func copyFlat(dst, src any) {
	switch d := dst.(type) {
	case []float32:
		copy(d, src.([]float32))
	case []float64:
		copy(d, src.([]float64))
	case []bool:
		copy(d, src.([]bool))
	case []int8:
		copy(d, src.([]int8))
	case []int16:
		copy(d, src.([]int16))
	case []int32:
		copy(d, src.([]int32))
	case []int64:
		copy(d, src.([]int64))
	case []uint8:
		copy(d, src.([]uint8))
	case []uint16:
		copy(d, src.([]uint16))
	case []uint32:
		copy(d, src.([]uint32))
	case []uint64:
		copy(d, src.([]uint64))
	case []bfloat16.BFloat16:
		copy(d, src.([]bfloat16.BFloat16))
	default:
		panic(fmt.Sprintf("cpu backend: unsupported flat type %T", dst))
	}
}

// flatDType returns the dtype and length of a typed flat slice.
func flatDType(flat any) (dtypes.DType, int, error) {
	if flat == nil {
		return dtypes.InvalidDType, 0, fmt.Errorf("flat data is nil")
	}
	t := reflect.TypeOf(flat)
	if t.Kind() != reflect.Slice {
		return dtypes.InvalidDType, 0, fmt.Errorf("flat data must be a slice, got %T", flat)
	}
	dt := dtypes.FromGoType(t.Elem())
	if !isSupportedDType(dt) {
		return dt, 0, fmt.Errorf("flat data of type %T has unsupported dtype %s", flat, dt)
	}
	v := reflect.ValueOf(flat)
	if t.Elem() != dt.GoType() {
		return dt, 0, fmt.Errorf("flat data of type %T: element type must be exactly %s", flat, dt.GoType())
	}
	return dt, v.Len(), nil
}

// bytesOf returns the number of bytes needed for n elements of dt.
func bytesOf(dt dtypes.DType, n int) int { return n * dt.Size() }

// words returns the number of uint64 words to hold nBytes.
func words(nBytes int) int { return (nBytes + 7) / 8 }

// scalarAsFloat64 reads element i of a typed slice as float64 (used for
// small, non-performance-critical reads).
func scalarAsFloat64(flat any, i int) float64 {
	switch s := flat.(type) {
	case []float32:
		return float64(s[i])
	case []float64:
		return s[i]
	case []int8:
		return float64(s[i])
	case []int16:
		return float64(s[i])
	case []int32:
		return float64(s[i])
	case []int64:
		return float64(s[i])
	case []uint8:
		return float64(s[i])
	case []uint16:
		return float64(s[i])
	case []uint32:
		return float64(s[i])
	case []uint64:
		return float64(s[i])
	case []bfloat16.BFloat16:
		return float64(s[i].Float32())
	case []bool:
		if s[i] {
			return 1
		}
		return 0
	}
	panic(fmt.Sprintf("cpu backend: unsupported flat type %T", flat))
}

// scalarAsInt reads element i of an integer typed slice as int.
func scalarAsInt(flat any, i int) int {
	switch s := flat.(type) {
	case []int8:
		return int(s[i])
	case []int16:
		return int(s[i])
	case []int32:
		return int(s[i])
	case []int64:
		return int(s[i])
	case []uint8:
		return int(s[i])
	case []uint16:
		return int(s[i])
	case []uint32:
		return int(s[i])
	case []uint64:
		if s[i] > uint64(maxInt) {
			return maxInt
		}
		return int(s[i])
	}
	panic(fmt.Sprintf("cpu backend: index slice of unsupported type %T", flat))
}

const maxInt = int(^uint(0) >> 1)
