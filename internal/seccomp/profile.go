package seccomp

import (
	"runtime"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// The default profile of `nsbox run`: equivalent in effect to Docker's. An
// allow list (anything else fails with EPERM, and system calls newer than
// the list with ENOSYS, so that libc falls back); calls that only a holder
// of some capability may make are allowed when the box's bounding set has
// it; a few are allowed only with harmless arguments.

// allowed are the system calls every box may make. Names this kernel or
// architecture lacks are ignored by Compile.
var allowed = []string{
	// Files and directories.
	"access", "chdir", "chmod", "chown", "chown32", "close", "close_range", "copy_file_range", "creat",
	"dup", "dup2", "dup3", "faccessat", "faccessat2", "fadvise64", "fadvise64_64", "fallocate",
	"fchdir", "fchmod", "fchmodat", "fchmodat2", "fchown", "fchown32", "fchownat", "fcntl", "fcntl64",
	"fdatasync", "fgetxattr", "flistxattr", "flock", "fremovexattr", "fsetxattr", "fstat", "fstat64",
	"fstatat64", "fstatfs", "fstatfs64", "fsync", "ftruncate", "ftruncate64", "futimesat", "getcwd",
	"getdents", "getdents64", "getxattr", "getxattrat", "lchown", "lchown32", "lgetxattr", "link", "linkat",
	"listxattr", "listxattrat", "llistxattr", "lremovexattr", "lseek", "_llseek", "lsetxattr", "lstat", "lstat64",
	"mkdir", "mkdirat", "mknod", "mknodat", "newfstatat", "open", "openat", "openat2", "pread64",
	"preadv", "preadv2", "pwrite64", "pwritev", "pwritev2", "read", "readahead", "readdir", "readlink",
	"readlinkat", "readv", "removexattr", "removexattrat", "rename", "renameat", "renameat2", "rmdir",
	"sendfile", "sendfile64", "setxattr", "setxattrat", "splice", "stat", "stat64", "statfs", "statfs64",
	"statx", "symlink", "symlinkat", "sync", "sync_file_range", "syncfs", "tee", "truncate", "truncate64",
	"umask", "unlink", "unlinkat", "utime", "utimensat", "utimensat_time64", "utimes", "write", "writev",
	"cachestat", "fanotify_mark", "inotify_add_watch", "inotify_init", "inotify_init1", "inotify_rm_watch",
	"statmount", "listmount",
	// Memory.
	"brk", "madvise", "membarrier", "memfd_create", "memfd_secret", "mincore", "mlock", "mlock2", "mlockall",
	"mmap", "mmap2", "mprotect", "mremap", "msync", "munlock", "munlockall", "munmap", "pkey_alloc",
	"pkey_free", "pkey_mprotect", "remap_file_pages", "map_shadow_stack", "mseal",
	// Processes, threads, signals and time.
	"alarm", "capget", "capset", "clock_getres", "clock_getres_time64", "clock_gettime", "clock_gettime64",
	"clock_nanosleep", "clock_nanosleep_time64", "adjtimex", "execve", "execveat", "exit", "exit_group",
	"fork", "vfork", "futex", "futex_time64", "futex_requeue", "futex_wait", "futex_waitv", "futex_wake",
	"get_robust_list", "set_robust_list", "get_thread_area", "set_thread_area", "getcpu", "getegid",
	"getegid32", "geteuid", "geteuid32", "getgid", "getgid32", "getgroups", "getgroups32", "getitimer",
	"getpgid", "getpgrp", "getpid", "getppid", "getpriority", "getrandom", "getresgid", "getresgid32",
	"getresuid", "getresuid32", "getrlimit", "getrusage", "getsid", "gettid", "gettimeofday", "getuid",
	"getuid32", "ioprio_get", "ioprio_set", "kill", "nanosleep", "pause", "pidfd_open", "pidfd_send_signal",
	"prctl", "prlimit64", "process_mrelease", "ptrace", "process_vm_readv", "process_vm_writev",
	"restart_syscall", "rseq", "rt_sigaction", "rt_sigpending", "rt_sigprocmask", "rt_sigqueueinfo",
	"rt_sigreturn", "rt_sigsuspend", "rt_sigtimedwait", "rt_sigtimedwait_time64", "rt_tgsigqueueinfo",
	"sched_get_priority_max", "sched_get_priority_min", "sched_getaffinity", "sched_getattr",
	"sched_getparam", "sched_getscheduler", "sched_rr_get_interval", "sched_rr_get_interval_time64",
	"sched_setaffinity", "sched_setattr", "sched_setparam", "sched_setscheduler", "sched_yield", "seccomp",
	"set_tid_address", "setfsgid", "setfsgid32", "setfsuid", "setfsuid32", "setgid", "setgid32",
	"setgroups", "setgroups32", "setitimer", "setpgid", "setpriority", "setregid", "setregid32",
	"setresgid", "setresgid32", "setresuid", "setresuid32", "setreuid", "setreuid32", "setrlimit",
	"setsid", "setuid", "setuid32", "sigaction", "sigaltstack", "signal", "signalfd", "signalfd4",
	"sigpending", "sigprocmask", "sigreturn", "sigsuspend", "sysinfo", "tgkill", "time", "timer_create",
	"timer_delete", "timer_getoverrun", "timer_gettime", "timer_gettime64", "timer_settime",
	"timer_settime64", "timerfd", "timerfd_create", "timerfd_gettime", "timerfd_gettime64",
	"timerfd_settime", "timerfd_settime64", "times", "tkill", "ugetrlimit", "uname", "wait4", "waitid",
	"waitpid", "landlock_add_rule", "landlock_create_ruleset", "landlock_restrict_self",
	// Descriptors, polling, IPC and sockets.
	"epoll_create", "epoll_create1", "epoll_ctl", "epoll_ctl_old", "epoll_pwait", "epoll_pwait2",
	"epoll_wait", "epoll_wait_old", "eventfd", "eventfd2", "ioctl", "io_cancel", "io_destroy",
	"io_getevents", "io_pgetevents", "io_pgetevents_time64", "io_setup", "io_submit", "ipc", "mq_getsetattr",
	"mq_notify", "mq_open", "mq_timedreceive", "mq_timedreceive_time64", "mq_timedsend",
	"mq_timedsend_time64", "mq_unlink", "msgctl", "msgget", "msgrcv", "msgsnd", "pipe", "pipe2", "poll",
	"ppoll", "ppoll_time64", "pselect6", "pselect6_time64", "select", "_newselect", "semctl", "semget",
	"semop", "semtimedop", "semtimedop_time64", "shmat", "shmctl", "shmdt", "shmget", "accept", "accept4",
	"bind", "connect", "getpeername", "getsockname", "getsockopt", "listen", "recv", "recvfrom",
	"recvmmsg", "recvmmsg_time64", "recvmsg", "send", "sendmmsg", "sendmsg", "sendto", "setsockopt",
	"shutdown", "socketcall", "socketpair",
	// What one architecture has.
	"arch_prctl", "modify_ldt", "arm_fadvise64_64", "arm_sync_file_range", "sync_file_range2",
	"breakpoint", "cacheflush", "set_tls",
}

// byCapability are the system calls allowed when the bounding set holds
// the capability: the kernel would refuse most of them anyway, but they are
// where kernel bugs are found, so a box without the capability never
// reaches them.
var byCapability = []struct {
	caps  []string // any of them
	names []string
}{
	{[]string{"CAP_SYS_ADMIN"}, []string{"clone3", "fanotify_init", "fsconfig", "fsmount", "fsopen", "fspick",
		"lookup_dcookie", "mount", "mount_setattr", "move_mount", "open_tree", "pivot_root", "quotactl",
		"quotactl_fd", "setdomainname", "sethostname", "setns", "umount", "umount2"}},
	{[]string{"CAP_SYS_ADMIN", "CAP_BPF"}, []string{"bpf"}},
	{[]string{"CAP_SYS_ADMIN", "CAP_PERFMON"}, []string{"perf_event_open"}},
	{[]string{"CAP_SYS_ADMIN", "CAP_SYSLOG"}, []string{"syslog"}},
	{[]string{"CAP_DAC_READ_SEARCH"}, []string{"name_to_handle_at", "open_by_handle_at"}},
	{[]string{"CAP_SYS_BOOT"}, []string{"reboot"}},
	{[]string{"CAP_SYS_CHROOT"}, []string{"chroot"}},
	{[]string{"CAP_SYS_MODULE"}, []string{"delete_module", "init_module", "finit_module"}},
	{[]string{"CAP_SYS_PACCT"}, []string{"acct"}},
	{[]string{"CAP_SYS_PTRACE"}, []string{"kcmp", "pidfd_getfd", "process_madvise", "userfaultfd"}},
	{[]string{"CAP_SYS_RAWIO"}, []string{"iopl", "ioperm"}},
	{[]string{"CAP_SYS_TIME"}, []string{"settimeofday", "stime", "clock_settime", "clock_settime64",
		"clock_adjtime", "clock_adjtime64"}},
	{[]string{"CAP_SYS_TTY_CONFIG"}, []string{"vhangup"}},
	{[]string{"CAP_SYS_NICE"}, []string{"get_mempolicy", "mbind", "set_mempolicy", "set_mempolicy_home_node",
		"migrate_pages", "move_pages"}},
}

// Never allowed by the default profile, whatever the capabilities: the key
// management calls (the kernel keyring is not namespaced), io_uring (it
// does file and network I/O that seccomp cannot see), kexec, swap, and
// obsolete calls (nfsservctl, uselib, ustat, sysfs, _sysctl, vm86, ...):
// they are simply not in the lists above.

// cloneNS are the clone(2) flags that make new namespaces; unshare(2) has
// one more (in clone's flags, that bit belongs to the exit signal).
const (
	cloneNS   = unix.CLONE_NEWNS | unix.CLONE_NEWUTS | unix.CLONE_NEWIPC | unix.CLONE_NEWUSER | unix.CLONE_NEWPID | unix.CLONE_NEWNET | unix.CLONE_NEWCGROUP
	unshareNS = cloneNS | unix.CLONE_NEWTIME
)

// personalities are the personality(2) values the default profile allows:
// PER_LINUX, PER_LINUX32, with UNAME26, and the query 0xffffffff.
var personalities = []uint64{0x0, 0x8, 0x20000, 0x20008, 0xffffffff}

// Default returns the default profile for a process whose bounding set is
// bounding (capability names as in the OCI spec).
func Default(bounding []string) *specs.LinuxSeccomp {
	has := map[string]bool{}
	for _, c := range bounding {
		has[c] = true
	}
	p := &specs.LinuxSeccomp{
		DefaultAction:   specs.ActErrno,
		DefaultErrnoRet: new(uint),
		Architectures:   architectures(),
	}
	*p.DefaultErrnoRet = uint(unix.EPERM)
	allow := func(names ...string) {
		p.Syscalls = append(p.Syscalls, specs.LinuxSyscall{Names: names, Action: specs.ActAllow})
	}
	allowIf := func(name string, args ...specs.LinuxSeccompArg) {
		p.Syscalls = append(p.Syscalls, specs.LinuxSyscall{Names: []string{name}, Action: specs.ActAllow, Args: args})
	}
	allow(allowed...)
	for _, g := range byCapability {
		for _, c := range g.caps {
			if has[c] {
				allow(g.names...)
				break
			}
		}
	}
	for _, v := range personalities {
		allowIf("personality", specs.LinuxSeccompArg{Index: 0, Value: v, Op: specs.OpEqualTo})
	}
	if has["CAP_SYS_ADMIN"] {
		allow("clone", "unshare")
	} else {
		// New namespaces need CAP_SYS_ADMIN, except a user namespace,
		// which would hand the box a full set in a namespace of its own:
		// only threads, processes and unshared files.
		allowIf("clone", specs.LinuxSeccompArg{Index: cloneFlagsArg(), Value: cloneNS, ValueTwo: 0, Op: specs.OpMaskedEqual})
		allowIf("unshare", specs.LinuxSeccompArg{Index: 0, Value: unshareNS, ValueTwo: 0, Op: specs.OpMaskedEqual})
	}
	if has["CAP_AUDIT_WRITE"] {
		allow("socket")
	} else {
		// Any socket but an audit netlink one.
		allowIf("socket", specs.LinuxSeccompArg{Index: 0, Value: unix.AF_NETLINK, Op: specs.OpNotEqual})
		allowIf("socket", specs.LinuxSeccompArg{Index: 2, Value: unix.NETLINK_AUDIT, Op: specs.OpNotEqual})
	}
	return p
}

// cloneFlagsArg is the index of clone's flags argument (the second on s390).
func cloneFlagsArg() uint {
	if runtime.GOARCH == "s390x" {
		return 1
	}
	return 0
}

// architectures are the ABIs of this machine's family, as profile names.
func architectures() []specs.Arch {
	switch runtime.GOARCH {
	case "amd64", "386":
		return []specs.Arch{specs.ArchX86_64, specs.ArchX86, specs.ArchX32}
	case "arm64", "arm":
		return []specs.Arch{specs.ArchAARCH64, specs.ArchARM}
	}
	native, _ := nativeArch()
	return []specs.Arch{specs.Arch(native)}
}
