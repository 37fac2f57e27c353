package main

import (
	"os/exec"
	"strings"
	"testing"
)

// TestLeanDependencies keeps out of the binary the packages that make every
// start slower and bigger: nsbox's peak memory is mostly its binary's pages
// (net alone doubled it; encoding/json, debug/elf and a general netlink
// library each cost hundreds of kilobytes), so netlink, nftables and JSON
// are nsbox's own, small, code.
func TestLeanDependencies(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, pkg := range strings.Fields(string(out)) {
		if pkg == "net/netip" { // addresses as values: small, no init
			continue
		}
		for _, banned := range []string{"net", "crypto", "regexp", "encoding/json", "debug", "github.com/google", "github.com/vishvananda", "github.com/mdlayher"} {
			if pkg == banned || strings.HasPrefix(pkg, banned+"/") {
				t.Errorf("nsbox depends on %s", pkg)
			}
		}
	}
}
