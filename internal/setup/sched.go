package setup

import (
	"fmt"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/nsbox/nsbox/internal/cgroups"
	"github.com/nsbox/nsbox/internal/initproc"
)

// Scheduling, I/O priority, CPU affinity and memory policy of the command
// (process.scheduler, ioPriority, execCPUAffinity, linux.memoryPolicy).

// scheduling appends the steps of process.execCPUAffinity.initial,
// ioPriority and scheduler, and linux.memoryPolicy: early, while the
// process still has the capabilities they may need (CAP_SYS_NICE).
func scheduling(b *initproc.Builder, s *specs.Spec) error {
	p := s.Process
	if a := p.ExecCPUAffinity; a != nil && a.Initial != "" {
		if err := affinity(b, "process.execCPUAffinity.initial", a.Initial); err != nil {
			return err
		}
	}
	if p.IOPriority != nil {
		if err := ioPriority(b, p.IOPriority); err != nil {
			return err
		}
	}
	if p.Scheduler != nil {
		if err := scheduler(b, p.Scheduler); err != nil {
			return err
		}
	}
	if s.Linux != nil && s.Linux.MemoryPolicy != nil {
		return memoryPolicy(b, s.Linux.MemoryPolicy)
	}
	return nil
}

var schedPolicies = map[specs.LinuxSchedulerPolicy]uint32{
	specs.SchedOther: 0, specs.SchedFIFO: 1, specs.SchedRR: 2, specs.SchedBatch: 3,
	specs.SchedIdle: 5, specs.SchedDeadline: 6,
}

var schedFlags = map[specs.LinuxSchedulerFlag]uint64{
	specs.SchedFlagResetOnFork: 0x01, specs.SchedFlagReclaim: 0x02, specs.SchedFlagDLOverrun: 0x04,
	specs.SchedFlagKeepPolicy: 0x08, specs.SchedFlagKeepParams: 0x10,
	specs.SchedFlagUtilClampMin: 0x20, specs.SchedFlagUtilClampMax: 0x40,
}

// scheduler appends sched_setattr(2) for process.scheduler.
func scheduler(b *initproc.Builder, s *specs.Scheduler) error {
	pol, ok := schedPolicies[s.Policy]
	if !ok {
		return fmt.Errorf("process.scheduler.policy %q: unknown (or not in this kernel, as SCHED_ISO)", s.Policy)
	}
	attr := &unix.SchedAttr{Size: unix.SizeofSchedAttr, Policy: pol, Nice: s.Nice, Priority: uint32(s.Priority),
		Runtime: s.Runtime, Deadline: s.Deadline, Period: s.Period}
	for _, f := range s.Flags {
		v, ok := schedFlags[f]
		if !ok {
			return fmt.Errorf("process.scheduler.flags: unknown flag %q", f)
		}
		attr.Flags |= v
	}
	if s.Nice < -20 || s.Nice > 19 {
		return fmt.Errorf("process.scheduler.nice %d: want -20 to 19", s.Nice)
	}
	b.Call("set the scheduling policy "+string(s.Policy), unix.SYS_SCHED_SETATTR, initproc.Imm(0), initproc.Ptr(b, attr), initproc.Imm(0))
	return nil
}

var ioClasses = map[specs.IOPriorityClass]uintptr{
	specs.IOPRIO_CLASS_RT: 1, specs.IOPRIO_CLASS_BE: 2, specs.IOPRIO_CLASS_IDLE: 3,
}

// ioPriority appends ioprio_set(2) for process.ioPriority.
func ioPriority(b *initproc.Builder, p *specs.LinuxIOPriority) error {
	class, ok := ioClasses[p.Class]
	if !ok {
		return fmt.Errorf("process.ioPriority.class %q: want IOPRIO_CLASS_RT, IOPRIO_CLASS_BE or IOPRIO_CLASS_IDLE", p.Class)
	}
	if p.Priority < 0 || p.Priority > 7 {
		return fmt.Errorf("process.ioPriority.priority %d: want 0 to 7", p.Priority)
	}
	const whoProcess = 1
	b.Call(fmt.Sprintf("set the I/O priority %s %d", p.Class, p.Priority), unix.SYS_IOPRIO_SET,
		initproc.Imm(whoProcess), initproc.Imm(0), initproc.Imm(class<<13|uintptr(p.Priority)))
	return nil
}

// bitmask turns a list such as "0-3,8" into a bitmask of 64-bit words.
func bitmask(field, list string) ([]uint64, error) {
	ids, err := cgroups.ParseList([]byte(list))
	if err != nil || len(ids) == 0 {
		return nil, fmt.Errorf("%s %q: want a list like 0-3,8", field, list)
	}
	var mask []uint64
	for _, id := range ids {
		for int(id)/64 >= len(mask) {
			mask = append(mask, 0)
		}
		mask[id/64] |= 1 << (id % 64)
	}
	return mask, nil
}

// affinity appends sched_setaffinity(2) to the cpus of list.
func affinity(b *initproc.Builder, field, list string) error {
	mask, err := bitmask(field, list)
	if err != nil {
		return err
	}
	b.Call("set the cpu affinity "+list, unix.SYS_SCHED_SETAFFINITY, initproc.Imm(0),
		initproc.Imm(uintptr(len(mask))*8), initproc.Ptr(b, &mask[0]))
	return nil
}

var mpolModes = map[specs.MemoryPolicyModeType]uintptr{
	specs.MpolDefault: 0, specs.MpolPreferred: 1, specs.MpolBind: 2, specs.MpolInterleave: 3,
	specs.MpolLocal: 4, specs.MpolPreferredMany: 5, specs.MpolWeightedInterleave: 6,
}

var mpolFlags = map[specs.MemoryPolicyFlagType]uintptr{
	specs.MpolFNumaBalancing: 1 << 13, specs.MpolFRelativeNodes: 1 << 14, specs.MpolFStaticNodes: 1 << 15,
}

// memoryPolicy appends set_mempolicy(2) for linux.memoryPolicy.
func memoryPolicy(b *initproc.Builder, p *specs.LinuxMemoryPolicy) error {
	mode, ok := mpolModes[p.Mode]
	if !ok {
		return fmt.Errorf("linux.memoryPolicy.mode %q: unknown", p.Mode)
	}
	for _, f := range p.Flags {
		v, ok := mpolFlags[f]
		if !ok {
			return fmt.Errorf("linux.memoryPolicy.flags: unknown flag %q", f)
		}
		mode |= v
	}
	if p.Nodes == "" {
		if p.Mode != specs.MpolDefault && p.Mode != specs.MpolLocal {
			return fmt.Errorf("linux.memoryPolicy.nodes: mode %s needs nodes", p.Mode)
		}
		b.Call("set the memory policy "+string(p.Mode), unix.SYS_SET_MEMPOLICY, initproc.Imm(mode), initproc.Imm(0), initproc.Imm(0))
		return nil
	}
	mask, err := bitmask("linux.memoryPolicy.nodes", p.Nodes)
	if err != nil {
		return err
	}
	b.Call("set the memory policy "+string(p.Mode)+" on nodes "+p.Nodes, unix.SYS_SET_MEMPOLICY, initproc.Imm(mode),
		initproc.Ptr(b, &mask[0]), initproc.Imm(uintptr(len(mask))*64+1))
	return nil
}
