//go:build amd64

#include "textflag.h"

// Batch-norm row passes (AVX2+FMA, float32 data, float64 sums), see
// batchnorm_amd64.go. Every function walks rows rows of ncols columns
// (ncols a positive multiple of 8) with a row stride of ld elements; the
// per-column vectors have ncols elements.

// func bnAffineAVX2(x, res, y, pre, hi, lo, coef, add *float32, rows, ncols, ld, relu int)
// y = ((x - hi) - lo) * coef + add, plus res (same layout as x) if res is
// not nil, stored to pre (same layout) if pre is not nil, then max(y, 0)
// if relu != 0 (NaN stays NaN).
TEXT ·bnAffineAVX2(SB), NOSPLIT, $0-96
	MOVQ x+0(FP), SI
	MOVQ res+8(FP), R13
	MOVQ y+16(FP), DI
	MOVQ pre+24(FP), R14
	MOVQ hi+32(FP), R8
	MOVQ lo+40(FP), R9
	MOVQ coef+48(FP), R10
	MOVQ add+56(FP), R11
	MOVQ rows+64(FP), CX
	MOVQ ncols+72(FP), DX
	MOVQ ld+80(FP), R12
	MOVQ relu+88(FP), BX
	SHLQ $2, DX
	SHLQ $2, R12
	VXORPS Y7, Y7, Y7
	TESTQ CX, CX
	JLE affdone

affrow:
	XORQ AX, AX

affcol:
	VMOVUPS (SI)(AX*1), Y0
	VSUBPS (R8)(AX*1), Y0, Y0
	VSUBPS (R9)(AX*1), Y0, Y0
	VMOVUPS (R11)(AX*1), Y1
	VFMADD231PS (R10)(AX*1), Y0, Y1
	TESTQ R13, R13
	JZ affrelu
	VADDPS (R13)(AX*1), Y1, Y1

affrelu:
	TESTQ R14, R14
	JZ affnopre
	VMOVUPS Y1, (R14)(AX*1)

affnopre:
	TESTQ BX, BX
	JZ affstore
	VMAXPS Y1, Y7, Y1

affstore:
	VMOVUPS Y1, (DI)(AX*1)
	ADDQ $32, AX
	CMPQ AX, DX
	JLT affcol
	ADDQ R12, SI
	ADDQ R12, DI
	TESTQ R13, R13
	JZ affprenext
	ADDQ R12, R13

affprenext:
	TESTQ R14, R14
	JZ affnext
	ADDQ R12, R14

affnext:
	DECQ CX
	JNZ affrow

affdone:
	VZEROUPPER
	RET

// func bnGradOutAVX2(x, gr, mask, y, mu, c1, c2, c3 *float32, rows, ncols, ld int)
// y = c1*g' + c2*(x - mu) + c3 with g' = g when mask is nil; otherwise g
// where mask >= 0, 0 where mask < 0 and mask itself (NaN) where mask is
// NaN (GoMLX's ReLU gradient rule).
TEXT ·bnGradOutAVX2(SB), NOSPLIT, $0-88
	MOVQ x+0(FP), SI
	MOVQ gr+8(FP), R13
	MOVQ mask+16(FP), BX
	MOVQ y+24(FP), DI
	MOVQ mu+32(FP), R8
	MOVQ c1+40(FP), R9
	MOVQ c2+48(FP), R10
	MOVQ c3+56(FP), R11
	MOVQ rows+64(FP), CX
	MOVQ ncols+72(FP), DX
	MOVQ ld+80(FP), R12
	SHLQ $2, DX
	SHLQ $2, R12
	VXORPS Y7, Y7, Y7
	TESTQ CX, CX
	JLE gdone

grow:
	XORQ AX, AX

gcol:
	VMOVUPS (SI)(AX*1), Y0
	VSUBPS (R8)(AX*1), Y0, Y0
	VMOVUPS (R13)(AX*1), Y1
	TESTQ BX, BX
	JZ gnomask
	VMOVUPS (BX)(AX*1), Y2
	VCMPPS $0x1d, Y7, Y2, Y4
	VANDPS Y4, Y1, Y1
	VCMPPS $0x03, Y2, Y2, Y5
	VANDPS Y5, Y2, Y5
	VORPS Y5, Y1, Y1

gnomask:
	VMOVUPS (R11)(AX*1), Y3
	VFMADD231PS (R10)(AX*1), Y0, Y3
	VFMADD231PS (R9)(AX*1), Y1, Y3
	VMOVUPS Y3, (DI)(AX*1)
	ADDQ $32, AX
	CMPQ AX, DX
	JLT gcol
	ADDQ R12, SI
	ADDQ R12, R13
	ADDQ R12, DI
	TESTQ BX, BX
	JZ gnext
	ADDQ R12, BX

gnext:
	DECQ CX
	JNZ grow

gdone:
	VZEROUPPER
	RET

// func bnStatsAVX2(x *float32, k, s1, s2 *float64, rows, ncols, ld int)
// With d = float64(x) - k: s1 += d, s2 += d*d.
TEXT ·bnStatsAVX2(SB), NOSPLIT, $0-56
	MOVQ x+0(FP), SI
	MOVQ k+8(FP), R8
	MOVQ s1+16(FP), R9
	MOVQ s2+24(FP), R10
	MOVQ rows+32(FP), CX
	MOVQ ncols+40(FP), DX
	MOVQ ld+48(FP), R12
	SHLQ $2, DX
	SHLQ $2, R12
	TESTQ CX, CX
	JLE sdone

srow:
	XORQ AX, AX

scol:
	VCVTPS2PD (SI)(AX*1), Y0
	VCVTPS2PD 16(SI)(AX*1), Y1
	VSUBPD (R8)(AX*2), Y0, Y0
	VSUBPD 32(R8)(AX*2), Y1, Y1
	VADDPD (R9)(AX*2), Y0, Y2
	VADDPD 32(R9)(AX*2), Y1, Y3
	VMOVUPD Y2, (R9)(AX*2)
	VMOVUPD Y3, 32(R9)(AX*2)
	VMOVUPD (R10)(AX*2), Y4
	VMOVUPD 32(R10)(AX*2), Y5
	VFMADD231PD Y0, Y0, Y4
	VFMADD231PD Y1, Y1, Y5
	VMOVUPD Y4, (R10)(AX*2)
	VMOVUPD Y5, 32(R10)(AX*2)
	ADDQ $32, AX
	CMPQ AX, DX
	JLT scol
	ADDQ R12, SI
	DECQ CX
	JNZ srow

sdone:
	VZEROUPPER
	RET

// func bnGradSumsAVX2(x, gr, mask *float32, mu, s1, s2 *float64, rows, ncols, ld int)
// With g' as in bnGradOutAVX2 and d = float64(x) - mu: s1 += g',
// s2 += g'*d.
TEXT ·bnGradSumsAVX2(SB), NOSPLIT, $0-72
	MOVQ x+0(FP), SI
	MOVQ gr+8(FP), R13
	MOVQ mask+16(FP), BX
	MOVQ mu+24(FP), R8
	MOVQ s1+32(FP), R9
	MOVQ s2+40(FP), R10
	MOVQ rows+48(FP), CX
	MOVQ ncols+56(FP), DX
	MOVQ ld+64(FP), R12
	SHLQ $2, DX
	SHLQ $2, R12
	VXORPS Y7, Y7, Y7
	TESTQ CX, CX
	JLE gsdone

gsrow:
	XORQ AX, AX

gscol:
	VMOVUPS (R13)(AX*1), Y6
	TESTQ BX, BX
	JZ gsnomask
	VMOVUPS (BX)(AX*1), Y2
	VCMPPS $0x1d, Y7, Y2, Y3
	VANDPS Y3, Y6, Y6
	VCMPPS $0x03, Y2, Y2, Y4
	VANDPS Y4, Y2, Y4
	VORPS Y4, Y6, Y6

gsnomask:
	VCVTPS2PD X6, Y2
	VEXTRACTF128 $1, Y6, X3
	VCVTPS2PD X3, Y3
	VCVTPS2PD (SI)(AX*1), Y0
	VCVTPS2PD 16(SI)(AX*1), Y1
	VSUBPD (R8)(AX*2), Y0, Y0
	VSUBPD 32(R8)(AX*2), Y1, Y1
	VADDPD (R9)(AX*2), Y2, Y4
	VADDPD 32(R9)(AX*2), Y3, Y5
	VMOVUPD Y4, (R9)(AX*2)
	VMOVUPD Y5, 32(R9)(AX*2)
	VMOVUPD (R10)(AX*2), Y4
	VMOVUPD 32(R10)(AX*2), Y5
	VFMADD231PD Y0, Y2, Y4
	VFMADD231PD Y1, Y3, Y5
	VMOVUPD Y4, (R10)(AX*2)
	VMOVUPD Y5, 32(R10)(AX*2)
	ADDQ $32, AX
	CMPQ AX, DX
	JLT gscol
	ADDQ R12, SI
	ADDQ R12, R13
	TESTQ BX, BX
	JZ gsnext
	ADDQ R12, BX

gsnext:
	DECQ CX
	JNZ gsrow

gsdone:
	VZEROUPPER
	RET

// The ReLU-mask variants read and write the signs of the ReLU input as two
// bitmaps (see ReLUMaskBytes) instead of the float32 values: bit i of the
// byte at bits is set where that column's input is >= 0, and of the byte at
// bits+nanOff where it is NaN. They require ld == ncols, so that the rows'
// bits are consecutive bytes.

DATA bnBit<>+0(SB)/4, $1
DATA bnBit<>+4(SB)/4, $2
DATA bnBit<>+8(SB)/4, $4
DATA bnBit<>+12(SB)/4, $8
DATA bnBit<>+16(SB)/4, $16
DATA bnBit<>+20(SB)/4, $32
DATA bnBit<>+24(SB)/4, $64
DATA bnBit<>+28(SB)/4, $128
GLOBL bnBit<>(SB), RODATA|NOPTR, $32

DATA bnNaN<>+0(SB)/4, $0x7fc00000
GLOBL bnNaN<>(SB), RODATA|NOPTR, $4

// func bnAffineBitsAVX2(x, res, y *float32, bits *uint8, hi, lo, coef, add *float32, rows, ncols, nanOff int)
// v = ((x - hi) - lo) * coef + add, plus res if res is not nil; its signs
// go to the bitmaps and y = max(v, 0) (NaN stays NaN).
TEXT ·bnAffineBitsAVX2(SB), NOSPLIT, $0-88
	MOVQ x+0(FP), SI
	MOVQ res+8(FP), R13
	MOVQ y+16(FP), DI
	MOVQ bits+24(FP), R14
	MOVQ hi+32(FP), R8
	MOVQ lo+40(FP), R9
	MOVQ coef+48(FP), R10
	MOVQ add+56(FP), R11
	MOVQ rows+64(FP), CX
	MOVQ ncols+72(FP), DX
	MOVQ nanOff+80(FP), BX
	SHLQ $2, DX
	VXORPS Y7, Y7, Y7
	TESTQ CX, CX
	JLE abdone

abrow:
	XORQ AX, AX

abcol:
	VMOVUPS (SI)(AX*1), Y0
	VSUBPS (R8)(AX*1), Y0, Y0
	VSUBPS (R9)(AX*1), Y0, Y0
	VMOVUPS (R11)(AX*1), Y1
	VFMADD231PS (R10)(AX*1), Y0, Y1
	TESTQ R13, R13
	JZ abmask
	VADDPS (R13)(AX*1), Y1, Y1

abmask:
	VCMPPS $0x1d, Y7, Y1, Y2
	VMOVMSKPS Y2, R12
	MOVB R12B, (R14)
	VCMPPS $0x03, Y1, Y1, Y3
	VMOVMSKPS Y3, R12
	MOVB R12B, (R14)(BX*1)
	INCQ R14
	VMAXPS Y1, Y7, Y1
	VMOVUPS Y1, (DI)(AX*1)
	ADDQ $32, AX
	CMPQ AX, DX
	JLT abcol
	ADDQ DX, SI
	ADDQ DX, DI
	TESTQ R13, R13
	JZ abnext
	ADDQ DX, R13

abnext:
	DECQ CX
	JNZ abrow

abdone:
	VZEROUPPER
	RET

// func bnGradOutBitsAVX2(x, gr *float32, bits *uint8, y, gm, mu, c1, c2, c3 *float32, rows, ncols, nanOff int)
// bnGradOutAVX2 with the ReLU mask from the bitmaps: g' = g where the
// ge bit is set, NaN where the NaN bit is set, else 0; g' is also stored
// to gm (same layout as x) if gm is not nil.
TEXT ·bnGradOutBitsAVX2(SB), NOSPLIT, $0-96
	MOVQ x+0(FP), SI
	MOVQ gr+8(FP), R13
	MOVQ bits+16(FP), BX
	MOVQ y+24(FP), DI
	MOVQ gm+32(FP), R15
	MOVQ mu+40(FP), R8
	MOVQ c1+48(FP), R9
	MOVQ c2+56(FP), R10
	MOVQ c3+64(FP), R11
	MOVQ rows+72(FP), CX
	MOVQ ncols+80(FP), DX
	MOVQ nanOff+88(FP), R14
	SHLQ $2, DX
	VMOVDQU bnBit<>(SB), Y8
	VBROADCASTSS bnNaN<>(SB), Y9
	TESTQ CX, CX
	JLE gbdone

gbrow:
	XORQ AX, AX

gbcol:
	VMOVUPS (SI)(AX*1), Y0
	VSUBPS (R8)(AX*1), Y0, Y0
	VMOVUPS (R13)(AX*1), Y1
	MOVBLZX (BX), R12
	VMOVD R12, X2
	VPBROADCASTD X2, Y2
	VPAND Y8, Y2, Y2
	VPCMPEQD Y8, Y2, Y2
	VANDPS Y2, Y1, Y1
	MOVBLZX (BX)(R14*1), R12
	VMOVD R12, X2
	VPBROADCASTD X2, Y2
	VPAND Y8, Y2, Y2
	VPCMPEQD Y8, Y2, Y2
	VANDPS Y9, Y2, Y2
	VORPS Y2, Y1, Y1
	INCQ BX
	TESTQ R15, R15
	JZ gbnogm
	VMOVUPS Y1, (R15)(AX*1)

gbnogm:
	VMOVUPS (R11)(AX*1), Y3
	VFMADD231PS (R10)(AX*1), Y0, Y3
	VFMADD231PS (R9)(AX*1), Y1, Y3
	VMOVUPS Y3, (DI)(AX*1)
	ADDQ $32, AX
	CMPQ AX, DX
	JLT gbcol
	ADDQ DX, SI
	ADDQ DX, R13
	ADDQ DX, DI
	TESTQ R15, R15
	JZ gbnext
	ADDQ DX, R15

gbnext:
	DECQ CX
	JNZ gbrow

gbdone:
	VZEROUPPER
	RET

// func bnGradSumsBitsAVX2(x, gr *float32, bits *uint8, mu, s1, s2 *float64, rows, ncols, nanOff int)
// bnGradSumsAVX2 with the ReLU mask from the bitmaps (as bnGradOutBitsAVX2).
TEXT ·bnGradSumsBitsAVX2(SB), NOSPLIT, $0-72
	MOVQ x+0(FP), SI
	MOVQ gr+8(FP), R13
	MOVQ bits+16(FP), BX
	MOVQ mu+24(FP), R8
	MOVQ s1+32(FP), R9
	MOVQ s2+40(FP), R10
	MOVQ rows+48(FP), CX
	MOVQ ncols+56(FP), DX
	MOVQ nanOff+64(FP), R14
	SHLQ $2, DX
	VMOVDQU bnBit<>(SB), Y8
	VBROADCASTSS bnNaN<>(SB), Y9
	TESTQ CX, CX
	JLE gsbdone

gsbrow:
	XORQ AX, AX

gsbcol:
	VMOVUPS (R13)(AX*1), Y6
	MOVBLZX (BX), R12
	VMOVD R12, X2
	VPBROADCASTD X2, Y2
	VPAND Y8, Y2, Y2
	VPCMPEQD Y8, Y2, Y2
	VANDPS Y2, Y6, Y6
	MOVBLZX (BX)(R14*1), R12
	VMOVD R12, X2
	VPBROADCASTD X2, Y2
	VPAND Y8, Y2, Y2
	VPCMPEQD Y8, Y2, Y2
	VANDPS Y9, Y2, Y2
	VORPS Y2, Y6, Y6
	INCQ BX
	VCVTPS2PD X6, Y2
	VEXTRACTF128 $1, Y6, X3
	VCVTPS2PD X3, Y3
	VCVTPS2PD (SI)(AX*1), Y0
	VCVTPS2PD 16(SI)(AX*1), Y1
	VSUBPD (R8)(AX*2), Y0, Y0
	VSUBPD 32(R8)(AX*2), Y1, Y1
	VADDPD (R9)(AX*2), Y2, Y4
	VADDPD 32(R9)(AX*2), Y3, Y5
	VMOVUPD Y4, (R9)(AX*2)
	VMOVUPD Y5, 32(R9)(AX*2)
	VMOVUPD (R10)(AX*2), Y4
	VMOVUPD 32(R10)(AX*2), Y5
	VFMADD231PD Y0, Y2, Y4
	VFMADD231PD Y1, Y3, Y5
	VMOVUPD Y4, (R10)(AX*2)
	VMOVUPD Y5, 32(R10)(AX*2)
	ADDQ $32, AX
	CMPQ AX, DX
	JLT gsbcol
	ADDQ DX, SI
	ADDQ DX, R13
	DECQ CX
	JNZ gsbrow

gsbdone:
	VZEROUPPER
	RET
