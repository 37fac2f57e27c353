package main

import (
	"os/exec"
	"strings"
	"testing"
)

// TestLeanDependencies keeps out of the binary the packages that make every
// start slower and bigger (net alone doubled nsbox's memory).
func TestLeanDependencies(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, pkg := range strings.Fields(string(out)) {
		for _, banned := range []string{"net", "crypto", "regexp"} {
			if pkg == banned || strings.HasPrefix(pkg, banned+"/") {
				t.Errorf("nsbox depends on %s", pkg)
			}
		}
	}
}
