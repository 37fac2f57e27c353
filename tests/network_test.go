package tests

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// Bridge networks. Every test makes its own network (its own bridge and
// subnet) and namespaces, and talks only to them and to loopback.

var netSeq int

// testNetwork creates a bridge network for the test and removes it (and
// checks that its bridge, rules and leases went) when the test ends.
func testNetwork(t *testing.T) (name, subnetPrefix string) {
	t.Helper()
	netSeq++
	name = fmt.Sprintf("nt%d-%d", os.Getpid()%100000, netSeq)
	third := (os.Getpid()+netSeq)%200 + 20
	subnetPrefix = fmt.Sprintf("10.213.%d.", third)
	ok(t, opts{}, "network", "create", "--subnet", subnetPrefix+"0/24", name)
	t.Cleanup(func() {
		if r := nsbox(t, opts{}, "network", "rm", name); r.code != 0 {
			t.Errorf("network rm %s: %s", name, r)
		}
		if out, _ := exec.Command("ip", "-br", "link", "show", "nsb-"+name).CombinedOutput(); !strings.Contains(string(out), "does not exist") {
			t.Errorf("bridge of network %s left: %s", name, out)
		}
		if out, _ := exec.Command("nft", "list", "ruleset").CombinedOutput(); strings.Contains(string(out), "net="+name) {
			t.Errorf("rules of network %s left:\n%s", name, out)
		}
	})
	return name, subnetPrefix
}

// startWeb runs a detached box on network with busybox httpd serving
// "hello NAME" on port 8080, and returns its address.
func startWeb(t *testing.T, network, name string, flags ...string) string {
	t.Helper()
	dir := t.TempDir()
	os.Chmod(dir, 0o755)
	os.WriteFile(filepath.Join(dir, "index.html"), []byte("hello "+name+"\n"), 0o644)
	args := append([]string{"run", "-d", "--name", name, "--net=bridge:" + network, "--bind", dir + ":/www:ro"}, flags...)
	args = append(args, "--rootfs", rootfs, "--", "httpd", "-f", "-p", "8080", "-h", "/www")
	ok(t, opts{files: true}, args...)
	t.Cleanup(func() { nsbox(t, opts{files: true}, "delete", "--force", name) })
	var st struct {
		Addr string `json:"addr"`
	}
	// The address is in the network's inspection.
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		out := ok(t, opts{}, "network", "inspect", network)
		var n struct {
			Boxes []struct {
				ID   string `json:"id"`
				Addr string `json:"addr"`
			} `json:"boxes"`
		}
		json.Unmarshal([]byte(out), &n)
		for _, b := range n.Boxes {
			if b.ID == name {
				st.Addr = b.Addr
			}
		}
		if st.Addr != "" {
			break
		}
	}
	if st.Addr == "" {
		t.Fatalf("box %s has no address on %s", name, network)
	}
	// Wait until it answers.
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if out, err := exec.Command("wget", "-qO-", "http://"+st.Addr+":8080/").Output(); err == nil && strings.Contains(string(out), "hello") {
			return st.Addr
		}
	}
	t.Fatalf("box %s (%s) does not answer", name, st.Addr)
	return ""
}

func TestNetworkBoxesReachEachOther(t *testing.T) {
	requireRoot(t)
	watchLeftovers(t)
	net, prefix := testNetwork(t)
	web := fmt.Sprintf("web-%d", os.Getpid())
	addr := startWeb(t, net, web)
	if !strings.HasPrefix(addr, prefix) {
		t.Errorf("address %s outside the network's subnet %s0/24", addr, prefix)
	}
	out := inBox(t, opts{}, fmt.Sprintf(`ip -4 -o addr show eth0 | grep -o 'inet [0-9./]*'; ip route | grep default; grep %s /etc/hosts; wget -qO- http://%s:8080/; wget -qO- http://%s:8080/`, web, addr, web),
		"--net=bridge:"+net)
	for _, want := range []string{"inet " + prefix, "default via " + prefix + "1", addr + "\t" + web, "hello " + web + "\nhello " + web} {
		if !strings.Contains(out, want) {
			t.Errorf("client box lacks %q:\n%s", want, out)
		}
	}
	// --add-host lines, and the box's own name.
	out = inBox(t, opts{}, "cat /etc/hosts /etc/hostname", "--net=bridge:"+net, "--add-host", "db.test:10.9.9.9", "--hostname", "client")
	if !strings.Contains(out, "10.9.9.9\tdb.test") || !strings.Contains(out, "\tclient") || !strings.HasSuffix(out, "client\n") {
		t.Errorf("hosts and hostname:\n%s", out)
	}
}

// clientHost makes a network namespace joined to the host by a veth pair
// (10.214.N.1 on the host's side, .2 inside): another "host" to reach
// published ports from.
func clientHost(t *testing.T) (netns, hostAddr string) {
	t.Helper()
	n := os.Getpid() % 200
	netns = fmt.Sprintf("nsbox-client-%d", os.Getpid())
	hostVeth, peer := fmt.Sprintf("nsbc%d", os.Getpid()%100000), "eth0"
	hostAddr = fmt.Sprintf("10.214.%d.1", n)
	run := func(args ...string) {
		t.Helper()
		if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%v: %v: %s", args, err, out)
		}
	}
	run("ip", "netns", "add", netns)
	t.Cleanup(func() {
		exec.Command("ip", "link", "del", hostVeth).Run()
		exec.Command("ip", "netns", "del", netns).Run()
	})
	run("ip", "link", "add", hostVeth, "type", "veth", "peer", "name", peer, "netns", netns)
	run("ip", "addr", "add", hostAddr+"/30", "dev", hostVeth)
	run("ip", "link", "set", hostVeth, "up")
	run("ip", "-n", netns, "addr", "add", fmt.Sprintf("10.214.%d.2/30", n), "dev", peer)
	run("ip", "-n", netns, "link", "set", peer, "up")
	run("ip", "-n", netns, "link", "set", "lo", "up")
	return netns, hostAddr
}

func TestNetworkPublishedPorts(t *testing.T) {
	requireRoot(t)
	watchLeftovers(t)
	net, _ := testNetwork(t)
	web := fmt.Sprintf("pub-%d", os.Getpid())
	port := fmt.Sprint(20000 + os.Getpid()%10000)
	startWeb(t, net, web, "-p", port+":8080")
	want := "hello " + web + "\n"
	// From the host, on 127.0.0.1.
	if out, err := exec.Command("wget", "-qO-", "http://127.0.0.1:"+port+"/").Output(); err != nil || string(out) != want {
		t.Errorf("from the host on 127.0.0.1:%s: %q %v", port, out, err)
	}
	// From another namespace, through the host's address on their link.
	ns, hostAddr := clientHost(t)
	if out, err := exec.Command("ip", "netns", "exec", ns, "busybox", "wget", "-qO-", "http://"+hostAddr+":"+port+"/").CombinedOutput(); err != nil || string(out) != want {
		t.Errorf("from a client namespace to %s:%s: %q %v", hostAddr, port, out, err)
	}
	// From another box, through the gateway.
	if out := inBox(t, opts{}, "wget -qO- http://"+strings.TrimSuffix(hostAddr, "")+":"+port+"/", "--net=bridge:"+net); out != want {
		t.Errorf("from another box: %q", out)
	}
	// The port is taken while the box runs.
	r := nsbox(t, opts{}, "run", "--net=bridge:"+net, "-p", port+":80", "--rootfs", rootfs, "--", "true")
	wantError(t, "a port in use", r, port)
	// Gone with the box.
	ok(t, opts{}, "delete", "--force", web)
	if out, _ := exec.Command("nft", "list", "ruleset").Output(); strings.Contains(string(out), "dport "+port) {
		t.Errorf("published port left after the box:\n%s", out)
	}
}

func TestNetworkManyBoxesAtOnce(t *testing.T) {
	requireRoot(t)
	watchLeftovers(t)
	net, _ := testNetwork(t)
	const n = 20
	addrs := make([]string, n)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			addrs[i] = startWeb(t, net, fmt.Sprintf("many-%d-%d", os.Getpid(), i))
		}(i)
	}
	wg.Wait()
	seen := map[string]bool{}
	for i, a := range addrs {
		if seen[a] {
			t.Errorf("address %s given twice", a)
		}
		seen[a] = true
		want := fmt.Sprintf("hello many-%d-%d\n", os.Getpid(), i)
		if out, err := exec.Command("wget", "-qO-", "http://"+a+":8080/").Output(); err != nil || string(out) != want {
			t.Errorf("box %d at %s: %q %v", i, a, out, err)
		}
	}
}

// TestDefaultNetworkMadeByBoxesAtOnce: boxes started at once on the default
// network before it exists all start; one of them makes it (they used to
// race to make the bridge: "create bridge nsbox0: file exists").
func TestDefaultNetworkMadeByBoxesAtOnce(t *testing.T) {
	requireRoot(t)
	watchLeftovers(t)
	t.Cleanup(func() { nsbox(t, opts{}, "network", "rm", "nsbox") })
	// The race is narrow: a few rounds, each from no network.
	for round := range 4 {
		if r := nsbox(t, opts{}, "network", "inspect", "nsbox"); r.code == 0 {
			if r := nsbox(t, opts{}, "network", "rm", "nsbox"); r.code != 0 {
				t.Fatalf("the default network is in use, so the test cannot begin without it: %s", r.stderr)
			}
		}
		const n = 8
		results := make([]result, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				results[i] = nsbox(t, opts{}, "run", "--net=bridge", "--rootfs", rootfs, "--", "/bin/true")
			}()
		}
		wg.Wait()
		for i, r := range results {
			if r.code != 0 {
				t.Errorf("round %d, box %d on the default network made at once: %d %s", round, i, r.code, r.stderr)
			}
		}
	}
}

func TestNetworkModes(t *testing.T) {
	requireRoot(t)
	watchLeftovers(t)
	host := hostNS(t, "net")
	if out := inBox(t, opts{}, "readlink /proc/self/ns/net", "--net=host", "--userns=host"); strings.TrimSpace(out) != host {
		t.Errorf("--net=host: %q, want %q", out, host)
	}
	if out := inBox(t, opts{}, "ip -o link | wc -l", "--net=none"); strings.TrimSpace(out) != "1" {
		t.Errorf("--net=none: %q links", out)
	}
	ns, _ := clientHost(t)
	if out := inBox(t, opts{}, "ip -o -4 addr show eth0 | grep -c 10.214", "--net=ns:/run/netns/"+ns); strings.TrimSpace(out) != "1" {
		t.Errorf("--net=ns: %q", out)
	}
	net, _ := testNetwork(t)
	web := fmt.Sprintf("shared-%d", os.Getpid())
	startWeb(t, net, web)
	if out := inBox(t, opts{}, "wget -qO- http://127.0.0.1:8080/", "--net=container:"+web); out != "hello "+web+"\n" {
		t.Errorf("--net=container: %q", out)
	}
}

func TestNetworkBadInput(t *testing.T) {
	requireRoot(t)
	watchLeftovers(t)
	net, _ := testNetwork(t)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"network", "create", "--subnet", "10.1.2.3", "x"}, "subnet"},
		{[]string{"network", "create", "--subnet", "10.213.0.0/8", "x"}, "overlaps"},
		{[]string{"network", "create", net}, "exists"},
		{[]string{"network", "create", "a/b"}, "network name"},
		{[]string{"network", "rm", "no-such-net"}, "no-such-net"},
		{[]string{"network", "inspect", "no-such-net"}, "no-such-net"},
		{[]string{"run", "--net=bridge:no-such-net", "--", "true"}, "no-such-net"},
		{[]string{"run", "--net=bridge:" + net, "-p", "80", "--", "true"}, "--publish"},
		{[]string{"run", "--net=bridge:" + net, "-p", "1:99999", "--", "true"}, "99999"},
		{[]string{"run", "--net=bridge:" + net, "-p", "80:80/sctp", "--", "true"}, "sctp"},
		{[]string{"run", "-p", "80:80", "--", "true"}, "--net=bridge"},
		{[]string{"run", "--net=ns:/nonexistent/netns", "--", "true"}, "/nonexistent/netns"},
		{[]string{"run", "--net=container:no-such-box", "--", "true"}, "no-such-box"},
		{[]string{"run", "--net=wifi", "--", "true"}, "--net"},
		{[]string{"run", "--net=bridge:" + net, "--share", "net", "--", "true"}, "--net"},
	} {
		wantError(t, strings.Join(c.args, " "), nsbox(t, opts{}, c.args...), c.want)
	}
	// A network in use is not removed.
	web := fmt.Sprintf("busy-%d", os.Getpid())
	startWeb(t, net, web)
	wantError(t, "rm of a network in use", nsbox(t, opts{}, "network", "rm", net), "in use")
}

// TestNetworkRootless: an unprivileged user's box gets a network from
// pasta or slirp4netns, with a published port reached on 127.0.0.1; the
// helper ends with the box. --net=bridge is refused without root.
func TestNetworkRootless(t *testing.T) {
	requireRoot(t)
	for i, mode := range []string{"pasta", "slirp4netns"} {
		o := opts{as: userFull, files: true}
		name := fmt.Sprintf("usernet-%d-%d", os.Getpid(), i)
		port := fmt.Sprint(30000 + os.Getpid()%10000 + i)
		dir := filepath.Join(work, name) // where the test user can reach it
		os.MkdirAll(dir, 0o755)
		t.Cleanup(func() { os.RemoveAll(dir) })
		os.WriteFile(filepath.Join(dir, "index.html"), []byte("hello "+mode+"\n"), 0o644)
		ok(t, o, "run", "-d", "--name", name, "--net="+mode, "-p", port+":8080", "--bind", dir+":/tmp/www:ro",
			"--rootfs", rootfs, "--", "httpd", "-f", "-p", "8080", "-h", "/tmp/www")
		var got string
		for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
			if out, err := exec.Command("wget", "-qO-", "http://127.0.0.1:"+port+"/").Output(); err == nil {
				got = string(out)
				break
			}
		}
		if got != "hello "+mode+"\n" {
			t.Errorf("--net=%s: published port %s answered %q", mode, port, got)
		}
		out := ok(t, opts{as: userFull}, "exec", name, "sh", "-c", "ip -4 -o addr | grep -v ' lo ' | wc -l; ip route | grep -c default")
		if strings.Fields(out)[0] != "1" || strings.Fields(out)[1] != "1" {
			t.Errorf("--net=%s: interface and default route in the box: %q", mode, out)
		}
		ok(t, o, "delete", "--force", name)
		for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
			if exec.Command("pgrep", "-u", userFull, "-x", mode).Run() != nil {
				break
			}
		}
		if out, err := exec.Command("pgrep", "-u", userFull, "-a", "-x", mode).Output(); err == nil {
			t.Errorf("%s left running after its box: %s", mode, out)
		}
	}
	wantError(t, "--net=bridge without root", nsbox(t, opts{as: userFull}, "run", "--net=bridge", "--", "true"), "needs root")
}

// TestNetworkReclaimsAfterCrash: when nsbox is killed, its box's lease
// and published port stay until the next command that touches them
// finds the box gone.
func TestNetworkReclaimsAfterCrash(t *testing.T) {
	requireRoot(t)
	watchLeftovers(t)
	net, _ := testNetwork(t)
	port := fmt.Sprint(40000 + os.Getpid()%10000)
	name := fmt.Sprintf("crash-%d", os.Getpid())
	cmd := exec.Command(bin, "--root", stateRoot, "run", "--name", name, "--net=bridge:"+net, "-p", port+":8080", "--rootfs", rootfs, "--", "sleep", "600")
	cmd.Env = append(os.Environ(), marker)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if out, _ := exec.Command("nft", "list", "ruleset").Output(); strings.Contains(string(out), "dport "+port) {
			break
		}
	}
	cmd.Process.Kill()
	cmd.Wait()
	// The box follows nsbox within moments; its port is taken over by a
	// new box once the old one is seen gone (its veth may outlive it: the
	// kernel tears a network namespace down later).
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if out := nsbox(t, opts{}, "state", name).stdout; strings.Contains(out, `"stopped"`) {
			break
		}
	}
	name2 := name + "-2"
	r := nsbox(t, opts{}, "run", "--name", name2, "--net=bridge:"+net, "-p", port+":8080", "--rootfs", rootfs, "--", "true")
	if r.code != 0 {
		t.Fatalf("publishing the port of a crashed box: %s", r)
	}
	ok(t, opts{}, "list") // removes the crashed box's record
	out := ok(t, opts{}, "network", "inspect", net)
	if strings.Contains(out, name) {
		t.Errorf("leases after the crash:\n%s", out)
	}
	if out, _ := exec.Command("nft", "list", "ruleset").Output(); strings.Contains(string(out), "dport "+port) {
		t.Errorf("port %s still published:\n%s", port, out)
	}
}

// TestNetworkIPv6: a network with an IPv6 subnet gives boxes both.
func TestNetworkIPv6(t *testing.T) {
	requireRoot(t)
	watchLeftovers(t)
	name := fmt.Sprintf("n6-%d", os.Getpid()%100000)
	ok(t, opts{}, "network", "create", "--subnet", fmt.Sprintf("10.215.%d.0/24", os.Getpid()%200), "--ipv6-subnet", "fd00:215::/64", name)
	t.Cleanup(func() { nsbox(t, opts{}, "network", "rm", name) })
	out := inBox(t, opts{}, "ip -6 -o addr show eth0 scope global; ip -6 route | grep default; ping6 -c1 -W2 fd00:215::1 >/dev/null && echo reached", "--net=bridge:"+name)
	if !strings.Contains(out, "fd00:215::") || !strings.Contains(out, "default via fd00:215::1") || !strings.Contains(out, "reached") {
		t.Errorf("IPv6 in the box:\n%s", out)
	}
}
