package cpu

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"unsafe"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/pkg/core/dtypes"
	"github.com/gomlx/gomlx/pkg/core/dtypes/bfloat16"
	"github.com/gomlx/gomlx/pkg/core/shapes"
)

// RNGBitGenerator: a PCG generator (math/rand/v2) seeded with the first two
// words of GoMLX's [3]uint64 state. The output's bytes are filled with
// successive 64-bit draws in little-endian order, and the new state is the
// generator's state after the draws, serialised as simplego does (the third
// word is carried over). This is deterministic, and bit-compatible with
// GoMLX's simplego backend, so both backends initialise models identically.

func init() {
	registerLowering(lowerRNG, backends.OpTypeRNGBitGenerator)
}

// RNGBitGenerator returns the updated state and a tensor of shape filled with
// random bits.
func (b *Builder) RNGBitGenerator(state backends.Op, shape shapes.Shape) (newState, values backends.Op, err error) {
	in, err := b.checkOps("RNGBitGenerator", state)
	if err != nil {
		return nil, nil, err
	}
	if !in[0].shape.Equal(backends.RNGStateShape) {
		return nil, nil, fmt.Errorf("cpu backend: RNGBitGenerator: state must be %s, got %s", backends.RNGStateShape, in[0].shape)
	}
	if !isSupportedDType(shape.DType) || shape.DType == dtypes.Bool {
		return nil, nil, fmt.Errorf("cpu backend: RNGBitGenerator: unsupported output shape %s", shape)
	}
	p := b.newMultiNode(backends.OpTypeRNGBitGenerator, []shapes.Shape{in[0].shape.Clone(), shape.Clone()}, nil, in[0])
	return p.outs[0], p.outs[1], nil
}

func lowerRNG(n *node) (kernelFn, error) {
	return func(ins, outs []any) {
		st := ins[0].([]uint64)
		pcg := rand.NewPCG(st[0], st[1])
		fillRandomBytes(pcg, flatBytes(outs[1]))
		mb, err := pcg.MarshalBinary()
		if err != nil || len(mb) != 20 {
			panic(fmt.Sprintf("RNGBitGenerator: unexpected PCG state encoding (%d bytes, %v)", len(mb), err))
		}
		ns := outs[0].([]uint64)
		third := st[2] // read before writing: ns may alias st
		// The encoding is big-endian; reading it little-endian (as simplego
		// does) keeps the state sequence bit-compatible with simplego.
		ns[0] = binary.LittleEndian.Uint64(mb[4:12])
		ns[1] = binary.LittleEndian.Uint64(mb[12:20])
		ns[2] = third
	}, nil
}

// fillRandomBytes fills buf with successive little-endian 64-bit draws.
func fillRandomBytes(src *rand.PCG, buf []byte) {
	i := 0
	for ; i+8 <= len(buf); i += 8 {
		binary.LittleEndian.PutUint64(buf[i:], src.Uint64())
	}
	if i < len(buf) {
		r := src.Uint64()
		for ; i < len(buf); i++ {
			buf[i] = byte(r)
			r >>= 8
		}
	}
}

// flatBytes returns the bytes of a typed flat slice.
func flatBytes(flat any) []byte {
	switch s := flat.(type) {
	case []uint8:
		return s
	case []int8:
		return bytesView(s)
	case []int16:
		return bytesView(s)
	case []uint16:
		return bytesView(s)
	case []int32:
		return bytesView(s)
	case []uint32:
		return bytesView(s)
	case []int64:
		return bytesView(s)
	case []uint64:
		return bytesView(s)
	case []float32:
		return bytesView(s)
	case []float64:
		return bytesView(s)
	case []bfloat16.BFloat16:
		return bytesView(s)
	}
	panic(fmt.Sprintf("RNGBitGenerator: unsupported output type %T", flat))
}

func bytesView[T any](s []T) []byte {
	if len(s) == 0 {
		return nil
	}
	var z T
	return unsafe.Slice((*byte)(unsafe.Pointer(&s[0])), len(s)*int(unsafe.Sizeof(z)))
}
