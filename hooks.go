package nsbox

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/nsbox/nsbox/internal/caps"
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
	b, _ := json.Marshal(specs.State{Version: specs.Version, ID: id, Status: status, Pid: pid, Bundle: bundle, Annotations: annotations})
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
// namespaces, with state on their standard input.
func runHostHooks(s *specs.Spec, kind string, state []byte) error {
	for i, h := range hooksOf(s, kind) {
		ctx := context.Background()
		cancel := func() {}
		if d := hookTimeout(h); d > 0 {
			ctx, cancel = context.WithTimeout(ctx, d)
		}
		cmd := exec.CommandContext(ctx, h.Path)
		cmd.Args = hookArgs(h)
		cmd.Env = h.Env
		cmd.Stdin = bytes.NewReader(state)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		err := cmd.Run()
		cancel()
		if ctx.Err() == context.DeadlineExceeded {
			return fmt.Errorf("%s hook %d (%s) timed out after %v", kind, i, h.Path, hookTimeout(h))
		}
		if err != nil {
			return fmt.Errorf("%s hook %d (%s): %v: %s", kind, i, h.Path, err, strings.TrimSpace(out.String()))
		}
	}
	return nil
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
		p, err := spawnIn(id, pid, pidfd, proc, h.Path, nil, nil, Options{Stdin: r, Stdout: ow, Stderr: ow, NoNewKeyring: true})
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
		var timer *time.Timer
		timedOut := false
		if d := hookTimeout(h); d > 0 {
			timer = time.AfterFunc(d, func() { timedOut = true; p.Signal(unix.SIGKILL) })
		}
		code, err := p.Wait()
		if timer != nil {
			timer.Stop()
		}
		<-done
		or.Close()
		switch {
		case timedOut:
			return fmt.Errorf("%s hook %d (%s) timed out after %v", kind, i, h.Path, hookTimeout(h))
		case err != nil:
			return fmt.Errorf("%s hook %d (%s): %w", kind, i, h.Path, err)
		case code != 0:
			return fmt.Errorf("%s hook %d (%s): exit status %d: %s", kind, i, h.Path, code, strings.TrimSpace(out.String()))
		}
	}
	return nil
}

// warn reports a problem that does not stop the lifecycle (a failed
// poststart or poststop hook).
func (rt *Runtime) warn(err error) {
	if err != nil && rt.Warnings != nil {
		fmt.Fprintf(rt.Warnings, "nsbox: warning: %v\n", err)
	}
}
