package testenv

import (
	"bytes"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

// readNewc is a minimal reader of newc archives: name → mode, content
// (or link target) and device numbers.
func readNewc(t *testing.T, b []byte) (names []string, files map[string][3]string) {
	t.Helper()
	files = map[string][3]string{}
	align := func(n int) int { return (n + 3) &^ 3 }
	for off := 0; ; {
		if len(b) < off+110 || string(b[off:off+6]) != "070701" {
			t.Fatalf("no newc header at %d", off)
		}
		field := func(i int) int {
			v, err := strconv.ParseUint(string(b[off+6+8*i:off+14+8*i]), 16, 32)
			if err != nil {
				t.Fatalf("header at %d, field %d: %v", off, i, err)
			}
			return int(v)
		}
		mode, size, namesize := field(1), field(6), field(11)
		name := string(b[off+110 : off+110+namesize-1])
		if b[off+110+namesize-1] != 0 {
			t.Fatalf("%s: name not NUL-terminated", name)
		}
		data := align(off + 110 + namesize)
		if name == "TRAILER!!!" {
			if rest := b[align(data+size):]; len(rest) != 0 {
				t.Fatalf("%d bytes after the trailer", len(rest))
			}
			return names, files
		}
		names = append(names, name)
		files[name] = [3]string{strconv.FormatInt(int64(mode), 8), string(b[data : data+size]), strconv.Itoa(field(9)) + ":" + strconv.Itoa(field(10))}
		off = align(data + size)
	}
}

func TestWriteCpio(t *testing.T) {
	host := filepath.Join(t.TempDir(), "host")
	if err := os.WriteFile(host, []byte("from the host\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	err := WriteCpio(&buf, []CpioEntry{
		{Path: "/init", Mode: 0o755, Data: []byte("#!/bin/sh\n")},
		{Path: "a/b/c", Mode: 0o644, Host: host},
		{Path: "a/d", Mode: fs.ModeDir | 0o700},
		{Path: "bin/sh", Mode: fs.ModeSymlink | 0o777, Data: []byte("busybox")},
		{Path: "dev/console", Mode: fs.ModeDevice | fs.ModeCharDevice | 0o600, Dev: [2]uint32{5, 1}},
		{Path: "empty", Mode: 0o644},
	})
	if err != nil {
		t.Fatal(err)
	}
	names, files := readNewc(t, buf.Bytes())
	wantNames := []string{"init", "a", "a/b", "a/b/c", "a/d", "bin", "bin/sh", "dev", "dev/console", "empty"}
	if !reflect.DeepEqual(names, wantNames) {
		t.Errorf("names %q, want %q", names, wantNames)
	}
	want := map[string][3]string{
		"init":        {"100755", "#!/bin/sh\n", "0:0"},
		"a":           {"40755", "", "0:0"},
		"a/b":         {"40755", "", "0:0"},
		"a/b/c":       {"100644", "from the host\n", "0:0"},
		"a/d":         {"40700", "", "0:0"},
		"bin":         {"40755", "", "0:0"},
		"bin/sh":      {"120777", "busybox", "0:0"},
		"dev":         {"40755", "", "0:0"},
		"dev/console": {"20600", "", "5:1"},
		"empty":       {"100644", "", "0:0"},
	}
	if !reflect.DeepEqual(files, want) {
		t.Errorf("files %q, want %q", files, want)
	}

	// Another reader agrees, if one is installed.
	if bb, err := Busybox(); err == nil {
		cmd := exec.Command(bb, "cpio", "-t")
		cmd.Stdin = bytes.NewReader(buf.Bytes())
		out, err := cmd.Output()
		if got := strings.Fields(string(out)); err != nil || !reflect.DeepEqual(got, wantNames) {
			t.Errorf("busybox cpio -t: %q %v", got, err)
		}
	}

	for _, bad := range []CpioEntry{{Path: "/"}, {Path: "x", Mode: 0o644, Host: "/no/such/file"}, {Path: "p", Mode: fs.ModeNamedPipe}} {
		if err := WriteCpio(&bytes.Buffer{}, []CpioEntry{bad}); err == nil {
			t.Errorf("%+v: no error", bad)
		}
	}
}
