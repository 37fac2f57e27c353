package main

import "testing"

func TestParseBytes(t *testing.T) {
	for in, want := range map[string]int64{"512": 512, "64k": 64 << 10, "256m": 256 << 20, "256MB": 256 << 20, "1g": 1 << 30,
		"1.5g": 3 << 29, "2GiB": 2 << 30, "-1": -1} {
		if got, err := parseBytes(in); err != nil || got != want {
			t.Errorf("parseBytes(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "m", "-5", "12x", "1e30g"} {
		if _, err := parseBytes(bad); err == nil {
			t.Errorf("parseBytes(%q) accepted", bad)
		}
	}
}

func TestUpdateFlagsSetOnlyWhatIsGiven(t *testing.T) {
	var f resourceFlags
	fs := newFlagSet("update", "ID", "")
	f.define(fs)
	if _, _, _, err := fs.parse([]string{"--memory", "64m", "--cpu-quota", "50000", "--pids-limit=7", "x"}); err != nil {
		t.Fatal(err)
	}
	r := f.r
	if r.Memory == nil || *r.Memory.Limit != 64<<20 || r.Memory.Swap != nil || r.CPU == nil || *r.CPU.Quota != 50000 ||
		r.CPU.Period != nil || r.Pids == nil || *r.Pids.Limit != 7 || r.BlockIO != nil {
		t.Fatalf("resources %+v", r)
	}
	if _, _, _, err := fs.parse([]string{"--l3-cache-schema", "L3:0=f"}); err == nil {
		t.Error("Intel RDT accepted")
	}
}
