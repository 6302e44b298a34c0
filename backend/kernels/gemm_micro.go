package kernels

import (
	"fmt"
	"strings"
	"sync/atomic"
	"unsafe"
)

// gemmFloat is the set of element types the GEMM and convolution kernels
// are generic over.
type gemmFloat interface {
	~float32 | ~float64
}

// gemmMicroArgs is the argument block of every micro-kernel; the assembly
// kernels read it by byte offset (see gemm_asm_gen.go), so the field order and
// types must not change (TestGemmMicroArgsLayout checks the offsets).
//
// A kernel accumulates acc[MR][NR] over nseg segments. A segment is 1+MR ints:
// k, then the byte offsets (relative to abase) of MR rows of A, each read
// contiguously for k elements. b is the packed [sum of k][NR] panel. Then for
// every row i < mr it stores C_i[0:nr] = alpha*acc_i + beta*C_i, where C_i
// starts at cbase + coffs[i] bytes; C is only read when useBeta != 0.
type gemmMicroArgs struct {
	segs    unsafe.Pointer // +0: *int, nseg*(1+MR) ints
	nseg    int            // +8
	abase   unsafe.Pointer // +16
	b       unsafe.Pointer // +24
	cbase   unsafe.Pointer // +32
	coffs   unsafe.Pointer // +40: *int, MR byte offsets
	mr      int            // +48: rows to store, 1..MR
	nr      int            // +56: columns to store, 1..NR
	alpha32 float32        // +64
	beta32  float32        // +68
	alpha64 float64        // +72
	beta64  float64        // +80
	useBeta int            // +88
	// The offset of the zero rows: the portable kernel reads zeros directly
	// instead of forming a pointer to another object from abase (which
	// checkptr rejects); the assembly kernels ignore these.
	zoff  int            // +96
	zeros unsafe.Pointer // +104
}

// gemmKernel is the set of micro-kernels for one element type: a wide
// kernel of MR x nrW and a narrow one of MR x nrN used for a last column
// strip of at most nrN columns. pair, if not nil, replaces narrow when every
// segment's k is even: it takes B packed by gemmPairPack and consumes k two
// at a time (which halves its broadcasts of A).
type gemmKernel struct {
	mr, nrW, nrN       int
	wide, narrow, pair func(*gemmMicroArgs)
}

// gemmPairPack rearranges a row-major kc x 16 panel (kc even) into the
// layout of the pair kernels: for each pair of rows 2q, 2q+1, two vectors of
// 16, the first holding columns 0..7 and the second columns 8..15, each
// column as its two rows' values side by side.
func gemmPairPack[T gemmFloat](dst, src []T, kc int) {
	const nr = 16
	for q := 0; q < kc/2; q++ {
		r0 := src[2*q*nr : 2*q*nr+nr]
		r1 := src[(2*q+1)*nr : (2*q+1)*nr+nr]
		d := dst[q*2*nr : (q+1)*2*nr]
		for j := 0; j < nr; j++ {
			d[2*j] = r0[j]
			d[2*j+1] = r1[j]
		}
	}
}

// gemmISA is a family of micro-kernels for one instruction set.
type gemmISA struct {
	name     string
	f32, f64 gemmKernel
	// wgrad32 is the float32 kernel-gradient micro-kernel (see
	// conv_wgrad.go); nil selects the portable one. wgrad32Narrow, if not
	// nil, has fewer rows, for kernel gradients of fewer rows than wgrad32's.
	wgrad32, wgrad32Narrow *wgradKernel
}

// Names of the micro-kernel families, for SetISA.
const (
	// ISAGo is the portable Go micro-kernel, available everywhere.
	ISAGo = "go"
	// ISAAVX2 is the AVX2+FMA assembly micro-kernel (amd64).
	ISAAVX2 = "avx2"
	// ISAAVX512 is the AVX-512F assembly micro-kernel (amd64).
	ISAAVX512 = "avx512"
)

// gemmPortableISA is the portable Go kernel family.
var gemmPortableISA = &gemmISA{
	name: ISAGo,
	f32:  gemmKernel{mr: 4, nrW: 4, nrN: 4, wide: gemmMicroGo[float32], narrow: gemmMicroGo[float32]},
	f64:  gemmKernel{mr: 4, nrW: 4, nrN: 4, wide: gemmMicroGo[float64], narrow: gemmMicroGo[float64]},
}

// gemmISAs lists the kernel families this CPU supports, best first; it is
// the package's registry of micro-kernels (filled in at init from CPU
// feature detection).
var gemmISAs = append(gemmNativeISAs(), gemmPortableISA)

// gemmActive is the family in use; nil selects gemmISAs[0].
var gemmActive atomic.Pointer[gemmISA]

// AvailableISAs returns the names of the micro-kernel families this CPU
// supports, best first; the last is always ISAGo.
func AvailableISAs() []string {
	names := make([]string, len(gemmISAs))
	for i, isa := range gemmISAs {
		names[i] = isa.name
	}
	return names
}

// CurrentISA returns the name of the micro-kernel family GEMM and
// convolution use.
func CurrentISA() string { return gemmCurrentISA().name }

// SetISA selects the micro-kernel family used by GEMM and convolution for the
// whole process (tests and benchmarks use it to exercise every path); "" or
// "auto" selects the best one available. It returns an error naming the
// available families if name is not one of them.
func SetISA(name string) error {
	if name == "" || name == "auto" {
		gemmActive.Store(nil)
		return nil
	}
	for _, isa := range gemmISAs {
		if isa.name == name {
			gemmActive.Store(isa)
			return nil
		}
	}
	return fmt.Errorf("kernels: micro-kernel family %q is not available on this CPU (have %s)",
		name, strings.Join(AvailableISAs(), ", "))
}

func gemmCurrentISA() *gemmISA {
	if isa := gemmActive.Load(); isa != nil {
		return isa
	}
	return gemmISAs[0]
}

// gemmKernelFor returns the active kernel pair for element type T.
func gemmKernelFor[T gemmFloat]() *gemmKernel {
	isa := gemmCurrentISA()
	var z T
	if unsafe.Sizeof(z) == 4 {
		return &isa.f32
	}
	return &isa.f64
}

// gemmMicroGo is the portable 4x4 micro-kernel with the same contract as the
// assembly ones.
func gemmMicroGo[T gemmFloat](args *gemmMicroArgs) {
	const mr, nr = 4, 4
	var c00, c01, c02, c03, c10, c11, c12, c13 T
	var c20, c21, c22, c23, c30, c31, c32, c33 T
	segs := unsafe.Slice((*int)(args.segs), args.nseg*(1+mr))
	var es T
	size := int(unsafe.Sizeof(es))
	boff := 0 // byte offset of the segment's B rows
	for s := 0; s < args.nseg; s++ {
		seg := segs[s*(1+mr) : (s+1)*(1+mr)]
		k := seg[0]
		if k == 0 {
			continue
		}
		a0 := gemmMicroRow[T](args, seg[1], k)
		a1 := gemmMicroRow[T](args, seg[2], k)
		a2 := gemmMicroRow[T](args, seg[3], k)
		a3 := gemmMicroRow[T](args, seg[4], k)
		b := unsafe.Slice((*T)(unsafe.Add(args.b, boff)), k*nr)
		for p := 0; p < k; p++ {
			bb := b[p*nr : p*nr+nr : p*nr+nr]
			b0, b1, b2, b3 := bb[0], bb[1], bb[2], bb[3]
			x := a0[p]
			c00 += x * b0
			c01 += x * b1
			c02 += x * b2
			c03 += x * b3
			x = a1[p]
			c10 += x * b0
			c11 += x * b1
			c12 += x * b2
			c13 += x * b3
			x = a2[p]
			c20 += x * b0
			c21 += x * b1
			c22 += x * b2
			c23 += x * b3
			x = a3[p]
			c30 += x * b0
			c31 += x * b1
			c32 += x * b2
			c33 += x * b3
		}
		boff += k * nr * size
	}
	acc := [mr][nr]T{
		{c00, c01, c02, c03},
		{c10, c11, c12, c13},
		{c20, c21, c22, c23},
		{c30, c31, c32, c33},
	}
	var alpha, beta T
	if size == 4 {
		alpha, beta = T(args.alpha32), T(args.beta32)
	} else {
		alpha, beta = T(args.alpha64), T(args.beta64)
	}
	coffs := unsafe.Slice((*int)(args.coffs), mr)
	for i := 0; i < args.mr; i++ {
		row := unsafe.Slice((*T)(unsafe.Add(args.cbase, coffs[i])), args.nr)
		if args.useBeta != 0 {
			for j := range row {
				row[j] = alpha*acc[i][j] + beta*row[j]
			}
		} else {
			for j := range row {
				row[j] = alpha * acc[i][j]
			}
		}
	}
}

// gemmMicroRow returns the k elements of A at byte offset off from abase, or
// from the zero rows.
func gemmMicroRow[T gemmFloat](args *gemmMicroArgs, off, k int) []T {
	if off == args.zoff && args.zeros != nil {
		return unsafe.Slice((*T)(args.zeros), k)
	}
	return unsafe.Slice((*T)(unsafe.Add(args.abase, off)), k)
}
