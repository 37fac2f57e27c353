#include "textflag.h"

// func rawVfork(flags uintptr, ptid *int32) (pid uintptr, errno uintptr)
//
// clone(flags, 0, ptid, 0, 0) for CLONE_VM|CLONE_VFORK: the child runs on
// this stack until it execs, so the return address is held in R12 (which
// the kernel preserves) instead of on the stack, where the child's calls
// would overwrite it before the parent resumes.
TEXT ·rawVfork(SB),NOSPLIT|NOFRAME,$0-32
	MOVQ	flags+0(FP), DI
	MOVQ	$0, SI
	MOVQ	ptid+8(FP), DX
	MOVQ	$0, R10
	MOVQ	$0, R8
	MOVQ	$56, AX		// SYS_clone
	POPQ	R12
	SYSCALL
	PUSHQ	R12
	CMPQ	AX, $0xfffffffffffff001
	JLS	ok
	MOVQ	$-1, pid+16(FP)
	NEGQ	AX
	MOVQ	AX, errno+24(FP)
	RET
ok:
	MOVQ	AX, pid+16(FP)
	MOVQ	$0, errno+24(FP)
	RET
