//go:build ignore

// This program generates gemm_amd64.s, the assembly GEMM micro-kernels.
// Run it with `go generate` in backend/kernels (see gemm_amd64.go).
//
// Every micro-kernel has the same contract (see gemmMicroArgs in
// gemm_micro.go): it accumulates, over a list of segments, an MR x NR tile
// acc += A_seg * B_seg, where each segment gives k and MR row offsets (in
// bytes, relative to abase) of MR rows of A that are read contiguously for k
// elements, and B is a packed [sum of k][NR] panel. It then stores
// C_row_i[0:nr] = alpha*acc_i + beta*C_row_i for rows i < mr, reading C only
// when useBeta != 0. Row i of C lives at cbase + coffs[i] bytes.
package main

import (
	"bytes"
	"fmt"
	"log"
	"os"
)

// kernel describes one generated micro-kernel.
type kernel struct {
	name   string
	avx512 bool
	es     int  // element size in bytes: 4 or 8
	mr     int  // rows
	v      int  // vectors per row
	unroll int  // k-loop unroll factor
	dual   bool // two accumulator sets (even/odd k) to hide FMA latency
	// pair: an AVX-512 float32 kernel for 16 columns that consumes k in
	// pairs: B is packed as [k/2][2 vectors] with vector j holding columns
	// 8j..8j+7 of rows 2q and 2q+1 interleaved, A pairs are broadcast as
	// 64-bit values, and the even and odd halves are summed at the end.
	// Every segment's k must be even.
	pair bool
}

func (k kernel) lanes() int {
	vb := 32
	if k.avx512 {
		vb = 64
	}
	return vb / k.es
}

func (k kernel) nr() int { return k.v * k.lanes() }

func (k kernel) reg(i int) string {
	if k.avx512 {
		return fmt.Sprintf("Z%d", i)
	}
	return fmt.Sprintf("Y%d", i)
}

func (k kernel) suffix() string {
	if k.es == 4 {
		return "PS"
	}
	return "PD"
}

func (k kernel) bcast() string {
	if k.es == 4 {
		return "VBROADCASTSS"
	}
	return "VBROADCASTSD"
}

func (k kernel) logES() int {
	if k.es == 4 {
		return 2
	}
	return 3
}

var rowRegs = []string{"AX", "BX", "CX", "DX", "SI", "DI", "R8", "R9", "R10", "R11", "R12", "R13"}

type gen struct{ bytes.Buffer }

func (g *gen) ins(format string, args ...any) {
	g.WriteString("\t")
	fmt.Fprintf(g, format, args...)
	g.WriteString("\n")
}

func (g *gen) label(l string) { g.WriteString(l + ":\n") }

// acc returns the accumulator register index of row i, vector j, set s.
func (k kernel) acc(i, j, s int) int { return s*k.mr*k.v + i*k.v + j }

func (k kernel) sets() int {
	if k.dual {
		return 2
	}
	return 1
}

// step emits one k-step (a k pair for pair kernels) at unroll position u,
// accumulating into set s.
func (k kernel) step(g *gen, u, s int) {
	nrBytes := k.nr() * k.es
	if k.pair {
		nrBytes = 2 * 64
		bReg := k.mr * k.v
		g.ins("VMOVUPS %d(R14), Z%d", u*nrBytes, bReg)
		g.ins("VMOVUPS %d(R14), Z%d", u*nrBytes+64, bReg+1)
		for i := 0; i < k.mr; i++ {
			t := bReg + 2 + i%6
			g.ins("VBROADCASTSD %d(%s)(R15*1), Z%d", u*8, rowRegs[i], t)
			g.ins("VFMADD231PS Z%d, Z%d, Z%d", bReg, t, k.acc(i, 0, 0))
			g.ins("VFMADD231PS Z%d, Z%d, Z%d", bReg+1, t, k.acc(i, 1, 0))
		}
		return
	}
	// B registers: after the accumulators.
	nAcc := k.mr * k.v * k.sets()
	bReg := nAcc
	for j := 0; j < k.v; j++ {
		g.ins("VMOVUP%s %d(R14), %s", k.suffix()[1:], u*nrBytes+j*k.lanes()*k.es, k.reg(bReg+j))
	}
	if k.avx512 && k.v == 1 {
		// Embedded broadcast: one FMA per row.
		for i := 0; i < k.mr; i++ {
			g.ins("VFMADD231%s.BCST %d(%s)(R15*1), %s, %s", k.suffix(), u*k.es, rowRegs[i], k.reg(bReg), k.reg(k.acc(i, 0, s)))
		}
		return
	}
	free := k.avx512Free(bReg + k.v)
	for i := 0; i < k.mr; i++ {
		t := free[i%len(free)]
		g.ins("%s %d(%s)(R15*1), %s", k.bcast(), u*k.es, rowRegs[i], k.reg(t))
		for j := 0; j < k.v; j++ {
			g.ins("VFMADD231%s %s, %s, %s", k.suffix(), k.reg(bReg+j), k.reg(t), k.reg(k.acc(i, j, s)))
		}
	}
}

// avx512Free lists the vector registers from first up to the last one.
func (k kernel) avx512Free(first int) []int {
	last := 15
	if k.avx512 {
		last = 31
	}
	var r []int
	for i := first; i <= last; i++ {
		r = append(r, i)
	}
	if len(r) == 0 {
		log.Fatalf("%s: no free vector register", k.name)
	}
	return r
}

func (k kernel) emit(g *gen) {
	nAcc := k.mr * k.v * k.sets()
	if k.mr > len(rowRegs) {
		log.Fatalf("%s: MR too large", k.name)
	}
	limit := 16
	if k.avx512 {
		limit = 32
	}
	if nAcc+k.v+1 > limit {
		log.Fatalf("%s: too many registers", k.name)
	}
	fmt.Fprintf(g, "// func %s(args *gemmMicroArgs)\n", k.name)
	fmt.Fprintf(g, "// %dx%d tile", k.mr, k.nr())
	if k.dual {
		fmt.Fprintf(g, ", two accumulator sets")
	}
	fmt.Fprintf(g, ".\nTEXT ·%s(SB), NOSPLIT, $32-8\n", k.name)
	g.ins("MOVQ args+0(FP), DI")
	g.ins("MOVQ DI, 0(SP)")
	g.ins("MOVQ 0(DI), AX")
	g.ins("MOVQ AX, 8(SP)")
	g.ins("MOVQ 8(DI), AX")
	g.ins("MOVQ AX, 16(SP)")
	g.ins("MOVQ 24(DI), R14")
	for i := 0; i < nAcc; i++ {
		if k.avx512 {
			g.ins("VPXORD %s, %s, %s", k.reg(i), k.reg(i), k.reg(i))
		} else {
			g.ins("VXORPS %s, %s, %s", k.reg(i), k.reg(i), k.reg(i))
		}
	}
	p := k.name + "_"
	g.label(p + "seg")
	g.ins("MOVQ 16(SP), AX")
	g.ins("TESTQ AX, AX")
	g.ins("JZ %sstore", p)
	g.ins("DECQ AX")
	g.ins("MOVQ AX, 16(SP)")
	g.ins("MOVQ 8(SP), R15")
	g.ins("MOVQ 0(R15), R12")
	g.ins("SHLQ $%d, R12", k.logES())
	g.ins("MOVQ 0(SP), R13")
	g.ins("MOVQ 16(R13), R13")
	g.ins("ADDQ R12, R13")
	g.ins("NEGQ R12")
	g.ins("MOVQ R12, 24(SP)")
	for i := 0; i < k.mr; i++ {
		r := rowRegs[i]
		if r == "R13" {
			g.ins("ADDQ %d(R15), R13", 8*(1+i))
			continue
		}
		g.ins("MOVQ %d(R15), %s", 8*(1+i), r)
		g.ins("ADDQ R13, %s", r)
	}
	g.ins("ADDQ $%d, R15", 8*(1+k.mr))
	g.ins("MOVQ R15, 8(SP)")
	g.ins("MOVQ 24(SP), R15")

	// Unrolled loop.
	u := k.unroll
	nrBytes := k.nr() * k.es
	stepBytes := k.es // A bytes per step
	if k.pair {
		nrBytes, stepBytes = 128, 8
	}
	g.label(p + "loop")
	g.ins("CMPQ R15, $-%d", u*stepBytes)
	g.ins("JGT %stail", p)
	for s := 0; s < u; s++ {
		set := 0
		if k.dual {
			set = s % 2
		}
		k.step(g, s, set)
	}
	g.ins("ADDQ $%d, R15", u*stepBytes)
	g.ins("ADDQ $%d, R14", u*nrBytes)
	g.ins("JMP %sloop", p)
	g.label(p + "tail")
	g.ins("TESTQ R15, R15")
	g.ins("JZ %sseg", p)
	k.step(g, 0, 0)
	g.ins("ADDQ $%d, R15", stepBytes)
	g.ins("ADDQ $%d, R14", nrBytes)
	g.ins("JMP %stail", p)

	// Store.
	g.label(p + "store")
	g.ins("MOVQ 0(SP), DI")
	if k.dual {
		for i := 0; i < k.mr; i++ {
			for j := 0; j < k.v; j++ {
				g.ins("VADD%s %s, %s, %s", k.suffix(), k.reg(k.acc(i, j, 1)), k.reg(k.acc(i, j, 0)), k.reg(k.acc(i, j, 0)))
			}
		}
	}
	alphaOff, betaOff := 64, 68
	if k.es == 8 {
		alphaOff, betaOff = 72, 80
	}
	nUsed := k.mr * k.v
	if k.pair {
		// Sum the even and odd k halves: per row, lanes (column, parity) of
		// two vectors become the 16 columns in order.
		g.ins("VMOVUPS ·gemmPairPerm<>(SB), Z26")
		for i := 0; i < k.mr; i++ {
			a0, a1 := k.acc(i, 0, 0), k.acc(i, 1, 0)
			g.ins("VSHUFPS $0x88, Z%d, Z%d, Z27", a1, a0)
			g.ins("VSHUFPS $0xDD, Z%d, Z%d, Z28", a1, a0)
			g.ins("VADDPS Z28, Z27, Z27")
			g.ins("VPERMPS Z27, Z26, Z%d", a0)
		}
		k.v = 1 // one output vector per row from here on
		k.store512(g, p, alphaOff, betaOff)
		k.v = 2
	} else if k.avx512 {
		k.store512(g, p, alphaOff, betaOff)
	} else {
		k.storeAVX2(g, p, alphaOff, betaOff, nUsed)
	}
	g.label(p + "done")
	g.ins("VZEROUPPER")
	g.ins("RET")
	g.WriteString("\n")
}

func (k kernel) store512(g *gen, p string, alphaOff, betaOff int) {
	// accOut is the register holding output vector j of row i.
	accOut := func(i, j int) int {
		if k.pair {
			return 2 * i
		}
		return k.acc(i, j, 0)
	}
	alpha, beta, t0 := 24, 25, 26
	g.ins("%s %d(DI), %s", k.bcast(), alphaOff, k.reg(alpha))
	g.ins("%s %d(DI), %s", k.bcast(), betaOff, k.reg(beta))
	g.ins("MOVQ 56(DI), CX")
	g.ins("MOVQ $1, DX")
	g.ins("SHLQ CX, DX")
	g.ins("DECQ DX")
	for j := 0; j < k.v; j++ {
		g.ins("KMOVW DX, K%d", j+1)
		if j+1 < k.v {
			g.ins("SHRQ $%d, DX", k.lanes())
		}
	}
	g.ins("MOVQ 32(DI), R8")
	g.ins("MOVQ 40(DI), R9")
	g.ins("MOVQ 88(DI), R10")
	g.ins("MOVQ 48(DI), R11")
	vb := k.lanes() * k.es
	for i := 0; i < k.mr; i++ {
		g.ins("CMPQ R11, $%d", i)
		g.ins("JLE %sdone", p)
		g.ins("MOVQ %d(R9), R12", 8*i)
		g.ins("ADDQ R8, R12")
		for j := 0; j < k.v; j++ {
			a := k.reg(accOut(i, j))
			g.ins("VMUL%s %s, %s, %s", k.suffix(), k.reg(alpha), a, a)
		}
		g.ins("TESTQ R10, R10")
		g.ins("JZ %snb%d", p, i)
		for j := 0; j < k.v; j++ {
			a := k.reg(accOut(i, j))
			t := k.reg(t0 + j)
			g.ins("VMOVUP%s.Z %d(R12), K%d, %s", k.suffix()[1:], j*vb, j+1, t)
			g.ins("VFMADD231%s %s, %s, %s", k.suffix(), k.reg(beta), t, a)
		}
		g.label(fmt.Sprintf("%snb%d", p, i))
		for j := 0; j < k.v; j++ {
			a := k.reg(accOut(i, j))
			g.ins("VMOVUP%s %s, K%d, %d(R12)", k.suffix()[1:], a, j+1, j*vb)
		}
	}
}

func (k kernel) storeAVX2(g *gen, p string, alphaOff, betaOff, nUsed int) {
	// Scale every accumulator by alpha first, freeing registers for the rest.
	g.ins("%s %d(DI), %s", k.bcast(), alphaOff, k.reg(12))
	for i := 0; i < nUsed; i++ {
		g.ins("VMUL%s %s, %s, %s", k.suffix(), k.reg(12), k.reg(i), k.reg(i))
	}
	beta, tmp := 12, 13
	g.ins("%s %d(DI), %s", k.bcast(), betaOff, k.reg(beta))
	g.ins("MOVQ 32(DI), R8")
	g.ins("MOVQ 40(DI), R9")
	g.ins("MOVQ 88(DI), R10")
	g.ins("MOVQ 48(DI), R11")
	g.ins("MOVQ 56(DI), CX")
	vb := k.lanes() * k.es
	g.ins("CMPQ CX, $%d", k.nr())
	g.ins("JLT %smasked", p)
	for i := 0; i < k.mr; i++ {
		g.ins("CMPQ R11, $%d", i)
		g.ins("JLE %sdone", p)
		g.ins("MOVQ %d(R9), R12", 8*i)
		g.ins("ADDQ R8, R12")
		g.ins("TESTQ R10, R10")
		g.ins("JZ %sfnb%d", p, i)
		for j := 0; j < k.v; j++ {
			a := k.reg(k.acc(i, j, 0))
			g.ins("VMOVUP%s %d(R12), %s", k.suffix()[1:], j*vb, k.reg(tmp))
			g.ins("VFMADD231%s %s, %s, %s", k.suffix(), k.reg(beta), k.reg(tmp), a)
		}
		g.label(fmt.Sprintf("%sfnb%d", p, i))
		for j := 0; j < k.v; j++ {
			g.ins("VMOVUP%s %s, %d(R12)", k.suffix()[1:], k.reg(k.acc(i, j, 0)), j*vb)
		}
	}
	g.ins("JMP %sdone", p)
	g.label(p + "masked")
	// Lane masks: lane l of vector j is stored when j*lanes+l < nr.
	iota, cmp, bc := "·gemmIota32<>", "VPCMPGTD", "VPBROADCASTD"
	if k.es == 8 {
		iota, cmp, bc = "·gemmIota64<>", "VPCMPGTQ", "VPBROADCASTQ"
	}
	g.ins("MOVQ CX, X14")
	g.ins("%s X14, Y14", bc)
	if k.v == 2 {
		g.ins("VMOVDQU Y14, Y15")
		g.ins("%s %s+32(SB), Y15, Y15", cmp, iota)
	}
	g.ins("%s %s+0(SB), Y14, Y14", cmp, iota)
	for i := 0; i < k.mr; i++ {
		g.ins("CMPQ R11, $%d", i)
		g.ins("JLE %sdone", p)
		g.ins("MOVQ %d(R9), R12", 8*i)
		g.ins("ADDQ R8, R12")
		g.ins("TESTQ R10, R10")
		g.ins("JZ %smnb%d", p, i)
		for j := 0; j < k.v; j++ {
			a := k.reg(k.acc(i, j, 0))
			g.ins("VMASKMOV%s %d(R12), %s, %s", k.suffix(), j*vb, k.reg(14+j), k.reg(tmp))
			g.ins("VFMADD231%s %s, %s, %s", k.suffix(), k.reg(beta), k.reg(tmp), a)
		}
		g.label(fmt.Sprintf("%smnb%d", p, i))
		for j := 0; j < k.v; j++ {
			g.ins("VMASKMOV%s %s, %s, %d(R12)", k.suffix(), k.reg(k.acc(i, j, 0)), k.reg(14+j), j*vb)
		}
	}
}

func main() {
	kernels := []kernel{
		{name: "gemmMicroF32Avx512W", avx512: true, es: 4, mr: 12, v: 2, unroll: 4},
		{name: "gemmMicroF32Avx512N", avx512: true, es: 4, mr: 12, v: 1, unroll: 4},
		{name: "gemmMicroF32Avx512P", avx512: true, es: 4, mr: 12, v: 2, unroll: 4, pair: true},
		{name: "gemmMicroF64Avx512W", avx512: true, es: 8, mr: 12, v: 2, unroll: 4},
		{name: "gemmMicroF64Avx512N", avx512: true, es: 8, mr: 12, v: 1, unroll: 4},
		{name: "gemmMicroF32Avx2W", es: 4, mr: 6, v: 2, unroll: 4},
		{name: "gemmMicroF32Avx2N", es: 4, mr: 6, v: 1, unroll: 4, dual: true},
		{name: "gemmMicroF64Avx2W", es: 8, mr: 6, v: 2, unroll: 4},
		{name: "gemmMicroF64Avx2N", es: 8, mr: 6, v: 1, unroll: 4, dual: true},
	}
	var g gen
	g.WriteString("// Code generated by gemm_asm_gen.go; DO NOT EDIT.\n\n")
	g.WriteString("//go:build amd64\n\n")
	g.WriteString("#include \"textflag.h\"\n\n")
	// Lane index constants for the AVX2 store masks.
	for i := 0; i < 16; i++ {
		fmt.Fprintf(&g, "DATA ·gemmIota32<>+%d(SB)/4, $%d\n", 4*i, i)
	}
	g.WriteString("GLOBL ·gemmIota32<>(SB), RODATA|NOPTR, $64\n\n")
	for i := 0; i < 8; i++ {
		fmt.Fprintf(&g, "DATA ·gemmIota64<>+%d(SB)/8, $%d\n", 8*i, i)
	}
	g.WriteString("GLOBL ·gemmIota64<>(SB), RODATA|NOPTR, $64\n\n")
	// Lane permutation of the pair kernel's reduction (see kernel.pair).
	for j, v := range []int{0, 1, 4, 5, 8, 9, 12, 13, 2, 3, 6, 7, 10, 11, 14, 15} {
		fmt.Fprintf(&g, "DATA ·gemmPairPerm<>+%d(SB)/4, $%d\n", 4*j, v)
	}
	g.WriteString("GLOBL ·gemmPairPerm<>(SB), RODATA|NOPTR, $64\n\n")
	for _, k := range kernels {
		k.emit(&g)
	}
	for _, k := range []tapKernel{
		{name: "wgradMicroF32Avx512", avx512: true, mr: 16},
		{name: "wgradMicroF32Avx2", mr: 4},
	} {
		k.emit(&g)
	}
	if err := os.WriteFile("gemm_amd64.s", g.Bytes(), 0o644); err != nil {
		log.Fatal(err)
	}
}

// tapKernel is a float32 micro-kernel of the kernel-gradient convolution
// (see wgradMicroArgs in conv_wgrad.go). For every k step it broadcasts MR
// consecutive A elements (the input channels of one input position) and
// loads 16 consecutive B elements (the output channels of one output
// gradient position); A and B advance by astep and bstep bytes per step.
// At the end it adds the MR x 16 tile to C (rows ldc bytes apart).
type tapKernel struct {
	name   string
	avx512 bool // 16 columns in one ZMM register, else in two YMM registers
	mr     int
}

// vecs is the number of vector registers per row of 16 columns.
func (k tapKernel) vecs() int {
	if k.avx512 {
		return 1
	}
	return 2
}

func (k tapKernel) reg(i int) string {
	if k.avx512 {
		return fmt.Sprintf("Z%d", i)
	}
	return fmt.Sprintf("Y%d", i)
}

// step emits one k step reading A at 0(AX)(idx) and B at 0(BX)(idx), where
// idx is "" or "(R12*1)" / "(R13*1)" for the second step of a pair.
func (k tapKernel) step(g *gen, aIdx, bIdx string) {
	v := k.vecs()
	bReg := k.mr * v
	for j := 0; j < v; j++ {
		g.ins("VMOVUPS %d(BX)%s, %s", 32*j, bIdx, k.reg(bReg+j))
	}
	for i := 0; i < k.mr; i++ {
		if k.avx512 {
			g.ins("VFMADD231PS.BCST %d(AX)%s, %s, %s", 4*i, aIdx, k.reg(bReg), k.reg(i))
			continue
		}
		t := k.reg(bReg + v)
		g.ins("VBROADCASTSS %d(AX)%s, %s", 4*i, aIdx, t)
		for j := 0; j < v; j++ {
			g.ins("VFMADD231PS %s, %s, %s", k.reg(bReg+j), t, k.reg(i*v+j))
		}
	}
}

func (k tapKernel) emit(g *gen) {
	v := k.vecs()
	nAcc := k.mr * v
	limit := 16
	if k.avx512 {
		limit = 32
	}
	if nAcc+v+1 > limit {
		log.Fatalf("%s: too many registers", k.name)
	}
	fmt.Fprintf(g, "// func %s(args *wgradMicroArgs)\n", k.name)
	fmt.Fprintf(g, "// %dx16 tile, A and B read with per-step strides.\n", k.mr)
	fmt.Fprintf(g, "TEXT ·%s(SB), NOSPLIT, $0-8\n", k.name)
	g.ins("MOVQ args+0(FP), DI")
	g.ins("MOVQ 0(DI), R8")   // segments
	g.ins("MOVQ 8(DI), R9")   // segment count
	g.ins("MOVQ 16(DI), R10") // abase
	g.ins("MOVQ 24(DI), R11") // bbase
	g.ins("MOVQ 32(DI), R12") // astep
	g.ins("MOVQ 40(DI), R13") // bstep
	for i := 0; i < nAcc; i++ {
		if k.avx512 {
			g.ins("VPXORD %s, %s, %s", k.reg(i), k.reg(i), k.reg(i))
		} else {
			g.ins("VXORPS %s, %s, %s", k.reg(i), k.reg(i), k.reg(i))
		}
	}
	p := k.name + "_"
	g.label(p + "seg")
	g.ins("TESTQ R9, R9")
	g.ins("JZ %sstore", p)
	g.ins("DECQ R9")
	g.ins("MOVQ 0(R8), CX")
	g.ins("MOVQ 8(R8), AX")
	g.ins("ADDQ R10, AX")
	g.ins("MOVQ 16(R8), BX")
	g.ins("ADDQ R11, BX")
	g.ins("ADDQ $24, R8")
	g.label(p + "pair")
	g.ins("CMPQ CX, $2")
	g.ins("JLT %stail", p)
	k.step(g, "", "")
	k.step(g, "(R12*1)", "(R13*1)")
	g.ins("LEAQ (AX)(R12*2), AX")
	g.ins("LEAQ (BX)(R13*2), BX")
	g.ins("SUBQ $2, CX")
	g.ins("JMP %spair", p)
	g.label(p + "tail")
	g.ins("TESTQ CX, CX")
	g.ins("JZ %sseg", p)
	k.step(g, "", "")
	g.ins("JMP %sseg", p)
	g.label(p + "store")
	g.ins("MOVQ 48(DI), AX") // C
	g.ins("MOVQ 56(DI), BX") // ldc
	for i := 0; i < k.mr; i++ {
		for j := 0; j < v; j++ {
			a := k.reg(i*v + j)
			g.ins("VADDPS %d(AX), %s, %s", 32*j, a, a)
			g.ins("VMOVUPS %s, %d(AX)", a, 32*j)
		}
		if i+1 < k.mr {
			g.ins("ADDQ BX, AX")
		}
	}
	g.ins("VZEROUPPER")
	g.ins("RET")
	g.WriteString("\n")
}
