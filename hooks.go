package nsbox

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/nsbox/nsbox/internal/caps"
	"github.com/nsbox/nsbox/internal/specjson"
)

// The OCI hooks, by the point of the lifecycle where they run
// (runtime.md): in the runtime's namespaces (host) or the box's.
const (
	hookPrestart        = "prestart"
	hookCreateRuntime   = "createRuntime"
	hookCreateContainer = "createContainer"
	hookStartContainer  = "startContainer"
	hookPoststart       = "poststart"
	hookPoststop        = "poststop"
)

func hooksOf(s *specs.Spec, kind string) []specs.Hook {
	h := s.Hooks
	if h == nil {
		return nil
	}
	switch kind {
	case hookPrestart:
		return h.Prestart //nolint:staticcheck // deprecated, still honoured
	case hookCreateRuntime:
		return h.CreateRuntime
	case hookCreateContainer:
		return h.CreateContainer
	case hookStartContainer:
		return h.StartContainer
	case hookPoststart:
		return h.Poststart
	case hookPoststop:
		return h.Poststop
	}
	return nil
}

// hookState is the state a hook reads on its standard input.
func hookState(id string, status specs.ContainerState, pid int, bundle string, annotations map[string]string) []byte {
	b, _ := specjson.Marshal(specs.State{Version: specs.Version, ID: id, Status: status, Pid: pid, Bundle: bundle, Annotations: annotations})
	return b
}

func hookTimeout(h specs.Hook) time.Duration {
	if h.Timeout != nil && *h.Timeout > 0 {
		return time.Duration(*h.Timeout) * time.Second
	}
	return 0
}

func hookArgs(h specs.Hook) []string {
	if len(h.Args) > 0 {
		return h.Args
	}
	return []string{h.Path}
}

// runHostHooks runs the hooks of kind, in order, in the runtime's
// namespaces, with state on their standard input. A failing poststart or
// poststop hook does not stop the ones after it (runtime.md): their
// errors are returned together, for a warning.
func runHostHooks(s *specs.Spec, kind string, state []byte) error {
	keepGoing := kind == hookPoststart || kind == hookPoststop
	var errs []error
	for i, h := range hooksOf(s, kind) {
		if err := runHostHook(h, state); err != nil {
			err = fmt.Errorf("%s hook %d (%s): %w", kind, i, h.Path, err)
			if !keepGoing {
				return err
			}
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// runHostHook runs one hook in its own process group, which its timeout
// kills whole: a hook's children must not outlive it, nor hold its output
// open.
func runHostHook(h specs.Hook, state []byte) error {
	ctx := context.Background()
	if d := hookTimeout(h); d > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, d)
		defer cancel()
	}
	cmd := exec.CommandContext(ctx, h.Path)
	cmd.Args = hookArgs(h)
	cmd.Env = h.Env
	cmd.Stdin = bytes.NewReader(state)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return unix.Kill(-cmd.Process.Pid, unix.SIGKILL) }
	cmd.WaitDelay = time.Second // a child that left the group may hold the output
	err := cmd.Run()
	if ctx.Err() == context.DeadlineExceeded {
		return fmt.Errorf("timed out after %v", hookTimeout(h))
	}
	return hookFailure(err, out.String())
}

// hookFailure is err with what the hook printed, if anything.
func hookFailure(err error, output string) error {
	if err == nil {
		return nil
	}
	if o := strings.TrimSpace(output); o != "" {
		return fmt.Errorf("%w: %s", err, o)
	}
	return err
}

// runBoxHooks runs the hooks of kind, in order, in the namespaces of the
// box's process pid (held by pidfd), with state on their standard input.
func runBoxHooks(id string, s *specs.Spec, kind string, pid, pidfd int, state []byte) error {
	all := caps.Own()
	for i, h := range hooksOf(s, kind) {
		proc := &specs.Process{
			Args: hookArgs(h), Env: h.Env, Cwd: "/",
			Capabilities: &specs.LinuxCapabilities{Bounding: all, Effective: all, Permitted: all},
		}
		r, w, err := os.Pipe()
		if err != nil {
			return err
		}
		var out bytes.Buffer
		or, ow, err := os.Pipe()
		if err != nil {
			r.Close()
			w.Close()
			return err
		}
		p, err := spawnIn(id, pid, pidfd, proc, h.Path, nil, confinement{}, Options{Stdin: r, Stdout: ow, Stderr: ow, NoNewKeyring: true})
		r.Close()
		ow.Close()
		if err != nil {
			w.Close()
			or.Close()
			return fmt.Errorf("%s hook %d (%s): %w", kind, i, h.Path, err)
		}
		go func() { w.Write(state); w.Close() }()
		done := make(chan struct{})
		go func() { out.ReadFrom(or); close(done) }()
		// The hook leads its own session in the box: a timeout kills its
		// process group, children included.
		var timer *time.Timer
		var timedOut atomic.Bool
		if d := hookTimeout(h); d > 0 {
			timer = time.AfterFunc(d, func() { timedOut.Store(true); unix.Kill(-p.Pid(), unix.SIGKILL) })
		}
		code, err := p.Wait()
		if timer != nil {
			timer.Stop()
		}
		if timedOut.Load() {
			unix.Kill(-p.Pid(), unix.SIGKILL)
		}
		select {
		case <-done:
		case <-time.After(time.Second): // a child that left the group holds the output
		}
		or.Close()
		switch {
		case timedOut.Load():
			return fmt.Errorf("%s hook %d (%s) timed out after %v", kind, i, h.Path, hookTimeout(h))
		case err != nil:
			return fmt.Errorf("%s hook %d (%s): %w", kind, i, h.Path, err)
		case code != 0:
			return fmt.Errorf("%s hook %d (%s): %w", kind, i, h.Path, hookFailure(fmt.Errorf("exit status %d", code), out.String()))
		}
	}
	return nil
}

// warn reports a problem that does not stop the lifecycle (a failed
// poststart or poststop hook).
func (rt *Runtime) warn(err error) {
	if err == nil || rt.Warnings == nil {
		return
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		for _, e := range j.Unwrap() {
			rt.warn(e)
		}
		return
	}
	fmt.Fprintf(rt.Warnings, "nsbox: warning: %v\n", err)
}
