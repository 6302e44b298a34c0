//go:build amd64

#include "textflag.h"

// Elementwise float32 loops (AVX2), see elementwise.go. Each handles the
// first n elements, n a positive multiple of 8.

// func addAVX2(dst, a, b *float32, n int)
TEXT ·addAVX2(SB), NOSPLIT, $0-32
	MOVQ dst+0(FP), DI
	MOVQ a+8(FP), SI
	MOVQ b+16(FP), DX
	MOVQ n+24(FP), CX
	XORQ AX, AX
	SHLQ $2, CX

addloop:
	VMOVUPS (SI)(AX*1), Y0
	VADDPS (DX)(AX*1), Y0, Y0
	VMOVUPS Y0, (DI)(AX*1)
	ADDQ $32, AX
	CMPQ AX, CX
	JLT addloop
	VZEROUPPER
	RET

// func mulNonNegAVX2(dst, gr, y *float32, n int)
// dst = gr * (1 where y >= 0, y where y is NaN, else 0).
TEXT ·mulNonNegAVX2(SB), NOSPLIT, $0-32
	MOVQ dst+0(FP), DI
	MOVQ gr+8(FP), SI
	MOVQ y+16(FP), DX
	MOVQ n+24(FP), CX
	VXORPS Y7, Y7, Y7
	MOVL $0x3f800000, AX
	MOVQ AX, X6
	VBROADCASTSS X6, Y6
	XORQ AX, AX
	SHLQ $2, CX

nnloop:
	VMOVUPS (DX)(AX*1), Y0
	VCMPPS $0x1d, Y7, Y0, Y1
	VANDPS Y6, Y1, Y2
	VCMPPS $3, Y0, Y0, Y3
	VBLENDVPS Y3, Y0, Y2, Y2
	VMULPS (SI)(AX*1), Y2, Y2
	VMOVUPS Y2, (DI)(AX*1)
	ADDQ $32, AX
	CMPQ AX, CX
	JLT nnloop
	VZEROUPPER
	RET
