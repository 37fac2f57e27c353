package nsbox

import (
	"errors"
	"fmt"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/nsbox/nsbox/internal/cgroups"
	"github.com/nsbox/nsbox/internal/state"
)

// Update changes the resource limits of box id, as `runc update` does: the
// fields r sets replace the box's, the result is written to its cgroup and
// recorded in its config. Nothing changes when a value is refused.
func (rt *Runtime) Update(id string, r *specs.LinuxResources) error {
	st, unlock, err := rt.loadLocked(id)
	if err != nil {
		return err
	}
	defer unlock()
	switch st.Status {
	case specs.StateCreated, specs.StateRunning, state.Paused:
	default:
		return fmt.Errorf("box %s is %s: only a created, running or paused box can be updated", id, st.Status)
	}
	m := cgroupOf(st)
	if m == nil {
		return fmt.Errorf("box %s has no cgroup of its own to update (it was started without one)", id)
	}
	s, err := st.Spec()
	if err != nil {
		return err
	}
	if s.Linux == nil {
		s.Linux = &specs.Linux{}
	}
	merged := MergeResources(s.Linux.Resources, r)
	plan, err := cgroups.PlanResources(m.Layout, merged)
	if err != nil {
		return err
	}
	if r.Memory != nil && r.Memory.CheckBeforeUpdate != nil && *r.Memory.CheckBeforeUpdate && r.Memory.Limit != nil && *r.Memory.Limit > 0 {
		stats, err := m.Stats()
		if err != nil {
			return err
		}
		if use := stats.Memory.Usage.Usage; use > uint64(*r.Memory.Limit) {
			return fmt.Errorf("memory limit %d is below the box's current usage %d (checkBeforeUpdate)", *r.Memory.Limit, use)
		}
	}
	plan.Devices = cgroups.DeviceRules(merged.Devices, s.Linux.Devices)
	if err := m.Set(plan); err != nil {
		return fmt.Errorf("update box %s: %w", id, err)
	}
	for _, w := range plan.Warnings {
		rt.warn(errors.New(w))
	}
	if merged.Memory != nil {
		merged.Memory.CheckBeforeUpdate = nil // a condition of this update, not a setting
	}
	s.Linux.Resources = merged
	if err := st.SetSpec(s); err != nil {
		return err
	}
	return rt.store.Save(st)
}

// MergeResources returns cur with every field that upd sets replaced (cur
// is not changed).
func MergeResources(cur, upd *specs.LinuxResources) *specs.LinuxResources {
	var out specs.LinuxResources
	if cur != nil {
		out = *cur
	}
	if upd == nil {
		return &out
	}
	if upd.Memory != nil {
		m := specs.LinuxMemory{}
		if out.Memory != nil {
			m = *out.Memory
		}
		u := upd.Memory
		setIf(&m.Limit, u.Limit)
		setIf(&m.Reservation, u.Reservation)
		setIf(&m.Swap, u.Swap)
		setIf(&m.Kernel, u.Kernel)
		setIf(&m.KernelTCP, u.KernelTCP)
		setIf(&m.Swappiness, u.Swappiness)
		setIf(&m.DisableOOMKiller, u.DisableOOMKiller)
		setIf(&m.UseHierarchy, u.UseHierarchy)
		setIf(&m.CheckBeforeUpdate, u.CheckBeforeUpdate)
		out.Memory = &m
	}
	if upd.CPU != nil {
		c := specs.LinuxCPU{}
		if out.CPU != nil {
			c = *out.CPU
		}
		u := upd.CPU
		setIf(&c.Shares, u.Shares)
		setIf(&c.Quota, u.Quota)
		setIf(&c.Burst, u.Burst)
		setIf(&c.Period, u.Period)
		setIf(&c.RealtimeRuntime, u.RealtimeRuntime)
		setIf(&c.RealtimePeriod, u.RealtimePeriod)
		setIf(&c.Idle, u.Idle)
		if u.Cpus != "" {
			c.Cpus = u.Cpus
		}
		if u.Mems != "" {
			c.Mems = u.Mems
		}
		out.CPU = &c
	}
	if upd.Pids != nil {
		out.Pids = upd.Pids
	}
	if upd.BlockIO != nil {
		out.BlockIO = upd.BlockIO
	}
	if upd.HugepageLimits != nil {
		out.HugepageLimits = upd.HugepageLimits
	}
	if upd.Network != nil {
		out.Network = upd.Network
	}
	if upd.Rdma != nil {
		out.Rdma = upd.Rdma
	}
	if upd.Devices != nil {
		out.Devices = upd.Devices
	}
	if len(upd.Unified) > 0 {
		u := map[string]string{}
		for k, v := range out.Unified {
			u[k] = v
		}
		for k, v := range upd.Unified {
			u[k] = v
		}
		out.Unified = u
	}
	return &out
}

func setIf[T any](dst **T, v *T) {
	if v != nil {
		*dst = v
	}
}
