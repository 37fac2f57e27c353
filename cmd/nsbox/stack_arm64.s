#include "textflag.h"

// func growStack(): see stack_amd64.s.
TEXT ·growStack(SB), 0, $65536-0
	RET
