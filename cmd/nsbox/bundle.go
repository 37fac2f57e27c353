package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/nsbox/nsbox"
)

// loadBundle reads DIR/config.json, with root.path made absolute.
func loadBundle(dir string) (*specs.Spec, string, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, "", err
	}
	b, err := os.ReadFile(filepath.Join(abs, "config.json"))
	if err != nil {
		return nil, abs, err
	}
	var s specs.Spec
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, abs, fmt.Errorf("%s/config.json: %w", abs, err)
	}
	if s.Root != nil && s.Root.Path != "" && !filepath.IsAbs(s.Root.Path) {
		s.Root.Path = filepath.Join(abs, s.Root.Path)
	}
	return &s, abs, nil
}

// runBundle is `nsbox run [--bundle DIR] ID`: create and start an OCI
// bundle, wait for it and remove it, as `runc run` does.
func runBundle(g *global, f *runFlags, id string) int {
	dir := f.bundle
	if dir == "" {
		dir = "."
	}
	s, abs, err := loadBundle(dir)
	if errors.Is(err, os.ErrNotExist) {
		return fail(g, &usageError{fmt.Sprintf("no config.json in %s for OCI box %q: %s", abs, id, bothForms)})
	}
	if err != nil {
		return fail(g, err)
	}
	if f.detach || f.consoleSocket != "" {
		return fail(g, &usageError{"run --detach and --console-socket of OCI bundles are not supported yet"})
	}
	opts := nsbox.StartOptions{Ephemeral: true, PreserveFDs: f.preserveFDs, Bundle: abs}
	return runForeground(g, id, s, opts, f.pidFile)
}
