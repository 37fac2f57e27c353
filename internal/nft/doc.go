// Package nft keeps the nftables rules of nsbox's bridge networks in one
// table of its own, `inet nsbox`, and nowhere else: outbound NAT
// (masquerade), forwarding, and published ports (DNAT).
//
// # The table
//
// As `nft list ruleset` shows it, for one network "nsbox" on bridge nsbox0
// with 10.77.0.0/24 and one published port (an IPv6 subnet adds its two
// masquerade rules, without the loopback ones):
//
//	table inet nsbox {
//	  chain raw-prerouting {   # type filter hook prerouting priority raw (-300)
//	    iifname "nsbox0" ip daddr 127.0.0.0/8 drop comment "nsbox net=nsbox"
//	  }
//	  chain nat-prerouting {   # type nat hook prerouting priority dstnat (-100)
//	    fib daddr type local jump ports comment "nsbox"
//	  }
//	  chain nat-output {       # type nat hook output priority -100
//	    fib daddr type local jump ports comment "nsbox"
//	  }
//	  chain filter-forward {   # type filter hook forward priority filter (0)
//	    iifname "nsbox0" accept comment "nsbox net=nsbox"
//	    oifname "nsbox0" accept comment "nsbox net=nsbox"
//	  }
//	  chain nat-postrouting {  # type nat hook postrouting priority srcnat (100)
//	    oifname != "nsbox0" ip saddr 10.77.0.0/24 masquerade comment "nsbox net=nsbox"
//	    oifname "nsbox0" ip saddr 10.77.0.0/24 ct status dnat masquerade comment "nsbox net=nsbox"
//	    oifname "nsbox0" ip saddr 127.0.0.0/8 ct status dnat masquerade comment "nsbox net=nsbox"
//	  }
//	  chain ports {            # regular chain: one rule per published port
//	    tcp dport 8080 dnat ip to 10.77.0.2:80 comment "nsbox net=nsbox box=ID"
//	  }
//	}
//
// (The rules also match meta nfproto, which nft leaves implicit.)
//
// Every rule carries a comment (the rule's user data, as `nft` shows it):
// "nsbox" for the table's own rules, "nsbox net=NAME" for a network's and
// "nsbox net=NAME box=ID" for a published port. RemoveNetwork and Unpublish
// delete by that tag, and Published reads the ports back from the rules
// themselves, so the kernel is the only record: nothing is lost when nsbox
// crashes, and the next command can reclaim the ports of dead boxes.
//
// # Published ports and 127.0.0.1
//
// One rule per port in chain ports, reached from prerouting (traffic from
// other hosts and namespaces) and from output (traffic of the host itself)
// for destinations that are local addresses of the host. A connection to
// 127.0.0.1:HOSTPORT is DNATed in output to the box; the kernel refuses to
// route a packet with a loopback source out of a non-loopback device unless
// route_localnet is set on that device, so EnsureNetwork sets
// net.ipv4.conf.BRIDGE.route_localnet=1, and the third masquerade rule
// gives such packets the bridge's address, so that the box can answer.
// This is what Docker does without its userland proxy; it needs no process
// per port and keeps the client's address for all other traffic. IPv6 has
// no route_localnet: [::1] is not published (the rules skip it, so that a
// connection is refused rather than hanging).
//
// route_localnet would also let a box send packets to the host's
// 127.0.0.1 services through the bridge (CVE-2020-8558 for kube-proxy), so
// chain raw-prerouting drops packets that arrive on the bridge for
// 127.0.0.0/8 before conntrack (the answers of published connections
// arrive for the bridge's address and become 127.0.0.1 only later).
//
// The second masquerade rule is the hairpin: a box that connects to a port
// published on the host's address (its own or another box's on the same
// bridge) would otherwise get the answer straight from the other box's
// address and drop it. Where br_netfilter is on (bridge-nf-call-iptables,
// the default once the module is loaded), the kernel bridges such a
// DNATed packet instead of routing it, so a box reaches its own published
// port only if its bridge port is in hairpin mode (IFLA_BRPORT_MODE): the
// netlink side sets that.
//
// # Forwarding
//
// The forward rules accept traffic from and to the bridge. nftables
// evaluates every base chain of a hook, and a drop in any of them is final:
// an accept here cannot overrule a drop policy in another table (or in
// iptables). A host with such a policy must allow the bridge in its own
// firewall.
//
// # Concurrency
//
// Each call is one netlink transaction (all of its changes or none), built
// on what it read of the table: the batch carries the generation of the
// ruleset that it read (NFNL_BATCH_GENID), and the kernel refuses it
// (ERESTART) if anything changed the ruleset in between; the call then
// reads again and decides again. So two processes publishing the same
// port at once cannot both get it, without a lock: one gets ErrPortInUse.
// A call that would change nothing sends nothing.
//
// # Netlink
//
// The package speaks nf_tables netlink itself, with golang.org/x/sys/unix
// only: netlink.go frames messages and batches, expr.go encodes the few
// expressions the rules use (meta, cmp, payload, bitwise, ct, fib,
// immediate, nat, masq) and decodes them as the kernel lists them. A
// general nftables library (and its netlink library, which brings the net
// package) more than tripled what this package adds to nsbox's binary,
// whose pages are most of nsbox's memory. route_localnet is set through
// internal/rtnl.
package nft
