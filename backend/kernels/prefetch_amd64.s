//go:build amd64

#include "textflag.h"

// func prefetchRows(base unsafe.Pointer, offs *int, n, dist, lines int)
// Prefetches (PREFETCHT0) lines consecutive cache lines from base +
// offs[i] + dist for i < n. Prefetching never faults, so the addresses
// need not be valid.
TEXT ·prefetchRows(SB), NOSPLIT, $0-40
	MOVQ base+0(FP), AX
	MOVQ offs+8(FP), BX
	MOVQ n+16(FP), CX
	MOVQ dist+24(FP), DX
	MOVQ lines+32(FP), SI
	ADDQ DX, AX
	TESTQ CX, CX
	JLE pfdone
	TESTQ SI, SI
	JLE pfdone

pfloop:
	MOVQ (BX), DX
	ADDQ AX, DX
	MOVQ SI, DI

pfline:
	PREFETCHT0 (DX)
	ADDQ $64, DX
	DECQ DI
	JNZ pfline
	ADDQ $8, BX
	DECQ CX
	JNZ pfloop

pfdone:
	RET
