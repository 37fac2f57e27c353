#include "textflag.h"

// func rawVfork(flags uintptr, ptid *int32) (pid uintptr, errno uintptr)
//
// clone(flags, 0, ptid, 0, 0) for CLONE_VM|CLONE_VFORK. The return address
// is in the link register, never on the stack the child shares.
TEXT ·rawVfork(SB),NOSPLIT|NOFRAME,$0-32
	MOVD	flags+0(FP), R0
	MOVD	$0, R1
	MOVD	ptid+8(FP), R2
	MOVD	$0, R3
	MOVD	$0, R4
	MOVD	$220, R8	// SYS_clone
	SVC
	CMN	$4095, R0
	BCC	ok
	MOVD	$-1, R4
	MOVD	R4, pid+16(FP)
	NEG	R0, R0
	MOVD	R0, errno+24(FP)
	RET
ok:
	MOVD	R0, pid+16(FP)
	MOVD	ZR, errno+24(FP)
	RET
