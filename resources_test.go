package nsbox

import (
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func TestMergeResources(t *testing.T) {
	limit, swap, quota, newLimit := int64(100), int64(200), int64(5000), int64(150)
	shares, pids := uint64(512), int64(9)
	check := true
	cur := &specs.LinuxResources{
		Memory:  &specs.LinuxMemory{Limit: &limit, Swap: &swap},
		CPU:     &specs.LinuxCPU{Quota: &quota, Cpus: "0"},
		Unified: map[string]string{"memory.high": "1"},
	}
	got := MergeResources(cur, &specs.LinuxResources{
		Memory:  &specs.LinuxMemory{Limit: &newLimit, CheckBeforeUpdate: &check},
		CPU:     &specs.LinuxCPU{Shares: &shares},
		Pids:    &specs.LinuxPids{Limit: &pids},
		Unified: map[string]string{"pids.max": "3"},
	})
	if *got.Memory.Limit != 150 || *got.Memory.Swap != 200 || *got.CPU.Quota != 5000 || *got.CPU.Shares != 512 ||
		got.CPU.Cpus != "0" || *got.Pids.Limit != 9 || got.Unified["memory.high"] != "1" || got.Unified["pids.max"] != "3" ||
		got.Memory.CheckBeforeUpdate == nil {
		t.Fatalf("merged %+v", got)
	}
	if *cur.Memory.Limit != 100 || cur.CPU.Shares != nil || len(cur.Unified) != 1 {
		t.Fatalf("the current resources changed: %+v", cur)
	}
}
