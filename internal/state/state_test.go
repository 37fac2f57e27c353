package state

import (
	"errors"
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func TestSaveLoadRemove(t *testing.T) {
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	unlock, _, err := s.Create("b1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Load("b1"); !errors.Is(err, ErrCreating) {
		t.Fatalf("Load of a box being created: %v", err)
	}
	unlock()
	st := &State{State: specs.State{Version: specs.Version, ID: "b1", Status: specs.StateCreated, Bundle: "/b"}, Owner: 7}
	for i, status := range []specs.ContainerState{specs.StateCreated, specs.StateRunning, Paused} {
		st.Status = status
		if err := s.Save(st); err != nil {
			t.Fatal(err)
		}
		got, err := s.Load("b1")
		if err != nil || got.Status != status || got.Owner != 7 || got.Bundle != "/b" {
			t.Fatalf("save %d: loaded %+v, %v", i, got, err)
		}
		// One record file, which the link names.
		files, _ := filepath.Glob(filepath.Join(s.Dir("b1"), "state.*.json"))
		link, _ := os.Readlink(filepath.Join(s.Dir("b1"), "state.json"))
		if len(files) != 1 || filepath.Base(files[0]) != link {
			t.Fatalf("save %d: files %v, link %q", i, files, link)
		}
	}
	// A save cut short leaves the previous file: Remove takes it too.
	os.WriteFile(filepath.Join(s.Dir("b1"), "state.2.json"), []byte("{}"), 0o600)
	os.WriteFile(filepath.Join(s.Dir("b1"), "state.4.json"), []byte("{}"), 0o600)
	if err := s.Remove("b1"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(s.Dir("b1")); !os.IsNotExist(err) {
		ents, _ := os.ReadDir(s.Dir("b1"))
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		sort.Strings(names)
		t.Fatalf("left %v", names)
	}
	if _, err := s.Load("b1"); err == nil {
		t.Fatal("loaded a removed box")
	}
}

// TestDiedCreation: a record whose creator died before saving a state
// (no lock, no state) loads as a stopped, ephemeral box with what its
// pending record names; its id cannot be taken meanwhile, and a directory
// left between mkdir and rename does not block the next creation.
func TestDiedCreation(t *testing.T) {
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	unlock, _, err := s.Create("d1")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.SavePending(&State{State: specs.State{ID: "d1"}, CgroupPath: "/nsbox/d1", IDRange: 7 << 16}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Create("d1"); !errors.Is(err, ErrExist) {
		t.Fatalf("second Create of d1: %v", err)
	}
	unlock() // the creator dies
	st, err := s.Load("d1")
	if err != nil || st.Status != specs.StateStopped || !st.Ephemeral || st.CgroupPath != "/nsbox/d1" || st.IDRange != 7<<16 || st.ID != "d1" {
		t.Fatalf("Load of a died creation: %+v, %v", st, err)
	}
	// A command that deletes it holds its lock first (and Load would find
	// that lock its creator's): LoadHeld.
	unlock, err = s.Lock("d1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Load("d1"); !errors.Is(err, ErrCreating) {
		t.Fatalf("Load under another's lock: %v, want ErrCreating", err)
	}
	st, err = s.LoadHeld("d1")
	unlock()
	if err != nil || st.Status != specs.StateStopped || st.CgroupPath != "/nsbox/d1" {
		t.Fatalf("LoadHeld of a died creation under the caller's lock: %+v, %v", st, err)
	}
	if err := s.Remove("d1"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(s.Dir("d1")); !os.IsNotExist(err) {
		t.Fatalf("record of d1 left: %v", err)
	}

	os.Mkdir(filepath.Join(s.Root, ".creating~d2"), 0o700)
	unlock, _, err = s.Create("d2")
	if err != nil {
		t.Fatalf("Create over a left temporary directory: %v", err)
	}
	unlock()
	if ids, _ := s.List(); len(ids) != 1 || ids[0] != "d2" {
		t.Fatalf("List: %v", ids)
	}
}

func TestLoadWaitsForCreation(t *testing.T) {
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	unlock, _, err := s.Create("b2")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Load("b2"); !errors.Is(err, ErrCreating) {
		t.Fatalf("Load during creation: %v", err)
	}
	go func() {
		time.Sleep(50 * time.Millisecond)
		s.Save(&State{State: specs.State{ID: "b2", Status: specs.StateRunning}})
		unlock()
	}()
	start := time.Now()
	s.WaitCreated("b2")
	if time.Since(start) < 40*time.Millisecond {
		t.Fatal("WaitCreated did not wait for the creation")
	}
	if st, err := s.Load("b2"); err != nil || st.Status != specs.StateRunning {
		t.Fatalf("after creation: %+v %v", st, err)
	}
	s.Remove("b2")
}
