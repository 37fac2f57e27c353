package network

import (
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"testing"
)

func TestPlan(t *testing.T) {
	n, err := Plan(Network{Name: DefaultName})
	if err != nil || n.Bridge != "nsbox0" || n.Subnet != DefaultSubnet || n.Gateway != netip.MustParseAddr("10.77.0.1") || n.MTU != 1500 {
		t.Fatalf("default: %+v %v", n, err)
	}
	n, err = Plan(Network{Name: "web", Subnet: netip.MustParsePrefix("192.168.50.7/24"), Subnet6: netip.MustParsePrefix("fd00:1::/64")})
	if err != nil || n.Bridge != "nsb-web" || n.Subnet.String() != "192.168.50.0/24" || n.Gateway6.String() != "fd00:1::1" {
		t.Fatalf("web: %+v %v", n, err)
	}
	for _, bad := range []Network{
		{Name: ""}, {Name: "a/b"}, {Name: ".x"}, {Name: "averyveryverylongname"},
		{Name: "x", Subnet: netip.MustParsePrefix("10.0.0.0/31")},
		{Name: "x", Subnet: netip.MustParsePrefix("fd00::/64")},
		{Name: "x", MTU: 100},
	} {
		if _, err := Plan(bad); err == nil {
			t.Errorf("accepted %+v", bad)
		}
	}
}

func TestAllocateConcurrently(t *testing.T) {
	s := &Store{Dir: t.TempDir()}
	n, _ := Plan(Network{Name: "t", Subnet: netip.MustParsePrefix("10.9.0.0/27")})
	if err := s.Add(n); err != nil {
		t.Fatal(err)
	}
	alive := func(Lease) bool { return true }
	var mu sync.Mutex
	got := map[netip.Addr]string{}
	var wg sync.WaitGroup
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			l, _, err := s.Allocate(&n, fmt.Sprint("box", i), "/r", "", alive)
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			defer mu.Unlock()
			if b, dup := got[l.Addr]; dup {
				t.Errorf("%s leased to %s and box%d", l.Addr, b, i)
			}
			got[l.Addr] = l.Box
		}(i)
	}
	wg.Wait()
	for a := range got {
		if !n.Subnet.Contains(a) || a == n.Gateway || a.String() == "10.9.0.31" {
			t.Errorf("address %s", a)
		}
	}
	// 29 usable addresses less the gateway: 9 left, then none.
	for i := 20; i < 29; i++ {
		if _, _, err := s.Allocate(&n, fmt.Sprint("box", i), "/r", "", alive); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := s.Allocate(&n, "one-too-many", "/r", "", alive); err == nil || !strings.Contains(err.Error(), "no free address") {
		t.Fatalf("a full network: %v", err)
	}
	// A dead box's lease is reclaimed; a released one too.
	addrOf := func(box string) netip.Addr {
		ls, _ := s.Leases("t")
		for _, l := range ls {
			if l.Box == box {
				return l.Addr
			}
		}
		return netip.Addr{}
	}
	dead := func(l Lease) bool { return l.Box != "box3" }
	if want := addrOf("box3"); !want.IsValid() {
		t.Fatal("box3 has no lease")
	} else if l, _, err := s.Allocate(&n, "new", "/r", "", dead); err != nil || l.Addr != want {
		t.Fatalf("reclaim: %+v %v, want %s", l, err, want)
	}
	want := addrOf("box0")
	s.Release("t", "box0", "/r")
	if l, _, err := s.Allocate(&n, "new2", "/r", "web", alive); err != nil || l.Addr != want {
		t.Fatalf("after release: %+v %v, want %s", l, err, want)
	}
	if _, _, err := s.Allocate(&n, "new3", "/r", "web", alive); err == nil {
		t.Fatal("a name taken twice")
	}
	if _, others, err := s.Allocate(&n, "new2", "/r", "web", alive); err != nil || len(others) != 28 {
		t.Fatalf("others: %d %v", len(others), err)
	}
}

func TestStoreAddListRemove(t *testing.T) {
	s := &Store{Dir: t.TempDir()}
	a, _ := Plan(Network{Name: "a", Subnet: netip.MustParsePrefix("10.1.0.0/24")})
	b, _ := Plan(Network{Name: "b", Subnet: netip.MustParsePrefix("10.1.0.0/16")})
	if err := s.Add(a); err != nil {
		t.Fatal(err)
	}
	if err := s.Add(a); err == nil {
		t.Error("a name twice")
	}
	if err := s.Add(b); err == nil || !strings.Contains(err.Error(), "overlaps") {
		t.Errorf("overlapping subnets: %v", err)
	}
	got, err := s.Get("a")
	if err != nil || *got != a {
		t.Fatalf("get: %+v %v", got, err)
	}
	if l, _ := s.List(); len(l) != 1 {
		t.Fatalf("list: %+v", l)
	}
	if err := s.Remove("a"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get("a"); err == nil {
		t.Fatal("removed network still there")
	}
}

func TestFiles(t *testing.T) {
	h := string(HostsFile(netip.MustParseAddr("10.77.0.5"), "web", "web1",
		[]Lease{{Addr: netip.MustParseAddr("10.77.0.2"), Name: "db"}, {Addr: netip.MustParseAddr("10.77.0.3")}},
		[]HostEntry{{Addr: netip.MustParseAddr("10.0.0.9"), Names: []string{"extra"}}}))
	for _, want := range []string{"127.0.0.1\tlocalhost", "10.77.0.5\tweb web1", "10.77.0.2\tdb", "10.0.0.9\textra"} {
		if !strings.Contains(h, want) {
			t.Errorf("hosts lacks %q:\n%s", want, h)
		}
	}
	if strings.Contains(h, "10.77.0.3") {
		t.Errorf("an unnamed box in hosts:\n%s", h)
	}
	n, _ := Plan(Network{Name: "x", Subnet: netip.MustParsePrefix("10.77.0.0/24"), Subnet6: netip.MustParsePrefix("fd00:77::/64")})
	if a := Addr6(&n, netip.MustParseAddr("10.77.0.5")); a.String() != "fd00:77::5" {
		t.Errorf("Addr6: %s", a)
	}
	if v := HostVeth("a-very-long-box-identifier-0123456789"); len(v) > 15 || !strings.HasPrefix(v, "nsb") {
		t.Errorf("veth name %q", v)
	}
}
