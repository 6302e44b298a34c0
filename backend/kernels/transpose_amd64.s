//go:build amd64

#include "textflag.h"

// func transpose8x8AVX2(src, dst unsafe.Pointer, sl, dq, nb int)
// Transposes nb 8x8 blocks of 4-byte elements: block b reads rows r < 8 of
// 8 elements at src + 32*b + r*sl and writes them as columns: row c of the
// result (8 elements) goes to dst + 8*b*dq + c*dq. sl and dq are in bytes.
TEXT ·transpose8x8AVX2(SB), NOSPLIT, $0-40
	MOVQ src+0(FP), SI
	MOVQ dst+8(FP), DI
	MOVQ sl+16(FP), R8
	MOVQ dq+24(FP), R9
	MOVQ nb+32(FP), CX
	TESTQ CX, CX
	JLE done
	// R10 = 3*sl, R11 = 5*sl, R12 = 7*sl; R13 = 3*dq, BX = 5*dq, DX = 7*dq
	LEAQ (R8)(R8*2), R10
	LEAQ (R8)(R8*4), R11
	LEAQ (R10)(R8*4), R12
	LEAQ (R9)(R9*2), R13
	LEAQ (R9)(R9*4), BX
	LEAQ (R13)(R9*4), DX

block:
	VMOVUPS (SI), Y0
	VMOVUPS (SI)(R8*1), Y1
	VMOVUPS (SI)(R8*2), Y2
	VMOVUPS (SI)(R10*1), Y3
	VMOVUPS (SI)(R8*4), Y4
	VMOVUPS (SI)(R11*1), Y5
	VMOVUPS (SI)(R10*2), Y6
	VMOVUPS (SI)(R12*1), Y7

	VUNPCKLPS Y1, Y0, Y8
	VUNPCKHPS Y1, Y0, Y9
	VUNPCKLPS Y3, Y2, Y10
	VUNPCKHPS Y3, Y2, Y11
	VUNPCKLPS Y5, Y4, Y12
	VUNPCKHPS Y5, Y4, Y13
	VUNPCKLPS Y7, Y6, Y14
	VUNPCKHPS Y7, Y6, Y15

	VSHUFPS $0x44, Y10, Y8, Y0
	VSHUFPS $0xEE, Y10, Y8, Y1
	VSHUFPS $0x44, Y11, Y9, Y2
	VSHUFPS $0xEE, Y11, Y9, Y3
	VSHUFPS $0x44, Y14, Y12, Y4
	VSHUFPS $0xEE, Y14, Y12, Y5
	VSHUFPS $0x44, Y15, Y13, Y6
	VSHUFPS $0xEE, Y15, Y13, Y7

	VPERM2F128 $0x20, Y4, Y0, Y8
	VPERM2F128 $0x20, Y5, Y1, Y9
	VPERM2F128 $0x20, Y6, Y2, Y10
	VPERM2F128 $0x20, Y7, Y3, Y11
	VPERM2F128 $0x31, Y4, Y0, Y12
	VPERM2F128 $0x31, Y5, Y1, Y13
	VPERM2F128 $0x31, Y6, Y2, Y14
	VPERM2F128 $0x31, Y7, Y3, Y15

	VMOVUPS Y8, (DI)
	VMOVUPS Y9, (DI)(R9*1)
	VMOVUPS Y10, (DI)(R9*2)
	VMOVUPS Y11, (DI)(R13*1)
	VMOVUPS Y12, (DI)(R9*4)
	VMOVUPS Y13, (DI)(BX*1)
	VMOVUPS Y14, (DI)(R13*2)
	VMOVUPS Y15, (DI)(DX*1)

	ADDQ $32, SI
	LEAQ (DI)(R9*8), DI
	DECQ CX
	JNZ block

done:
	VZEROUPPER
	RET
