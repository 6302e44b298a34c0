//go:build amd64

#include "textflag.h"

// func prefetchRows(base unsafe.Pointer, offs *int, n, dist int)
// Prefetches (PREFETCHT0) the cache line at base + offs[i] + dist for
// i < n. Prefetching never faults, so the addresses need not be valid.
TEXT ·prefetchRows(SB), NOSPLIT, $0-32
	MOVQ base+0(FP), AX
	MOVQ offs+8(FP), BX
	MOVQ n+16(FP), CX
	MOVQ dist+24(FP), DX
	ADDQ DX, AX
	TESTQ CX, CX
	JLE pfdone

pfloop:
	MOVQ (BX), DX
	PREFETCHT0 (AX)(DX*1)
	ADDQ $8, BX
	DECQ CX
	JNZ pfloop

pfdone:
	RET
