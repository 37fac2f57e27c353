package nsinfo

import "sort"

// Node is a namespace in a tree, with the namespaces below it.
type Node struct {
	*Namespace
	Children []*Node
}

// OwnershipTree nests the user namespaces of nss by parent and puts every
// other namespace under the user namespace that owns it: what a process
// with capabilities in a user namespace may act on. A namespace whose
// owner or parent is not in nss is a root.
func OwnershipTree(nss []*Namespace) []*Node {
	return build(nss, func(ns *Namespace) bool { return true }, func(ns *Namespace) uint64 {
		if ns.Type == User {
			return ns.Parent
		}
		return ns.Owner
	})
}

// PIDTree nests the pid namespaces of nss by parent: a process of a pid
// namespace is seen, with another pid, in each of its ancestors.
func PIDTree(nss []*Namespace) []*Node {
	return build(nss, func(ns *Namespace) bool { return ns.Type == PID }, func(ns *Namespace) uint64 { return ns.Parent })
}

// build makes the forest of the namespaces that keep says to, each under
// the one up says (by inode), children ordered by type then inode. A
// namespace whose up is 0, not kept, or itself is a root; so is one on a
// cycle (which the kernel does not make), reached from nowhere else.
func build(nss []*Namespace, keep func(*Namespace) bool, up func(*Namespace) uint64) []*Node {
	nodes := map[uint64]*Node{}
	var order []*Node
	for _, ns := range nss {
		if keep(ns) {
			n := &Node{Namespace: ns}
			nodes[ns.Inode] = n
			order = append(order, n)
		}
	}
	sort.Slice(order, func(i, j int) bool { return less(order[i].Namespace, order[j].Namespace) })
	var roots []*Node
	placed := map[*Node]bool{}
	for _, n := range order {
		p := nodes[up(n.Namespace)]
		if p == nil || p == n || reaches(n, p, nodes, up) {
			continue
		}
		p.Children = append(p.Children, n)
		placed[n] = true
	}
	for _, n := range order {
		if !placed[n] {
			roots = append(roots, n)
		}
	}
	return roots
}

// reaches reports whether going up from p meets n (p is below n).
func reaches(n, p *Node, nodes map[uint64]*Node, up func(*Namespace) uint64) bool {
	for i := 0; p != nil && i <= len(nodes); i++ {
		if p == n {
			return true
		}
		p = nodes[up(p.Namespace)]
	}
	return false
}

// less orders namespaces by type (user first), then inode.
func less(a, b *Namespace) bool {
	if a.Type != b.Type {
		return a.Type < b.Type
	}
	return a.Inode < b.Inode
}

// Walk calls f for every node of the forest, depth first, with its depth
// and whether it is the last child of its parent (for drawing).
func Walk(roots []*Node, f func(n *Node, depth int, last []bool)) {
	var walk func(ns []*Node, last []bool)
	walk = func(ns []*Node, last []bool) {
		for i, n := range ns {
			l := append(last[:len(last):len(last)], i == len(ns)-1)
			f(n, len(l)-1, l)
			walk(n.Children, l)
		}
	}
	walk(roots, nil)
}
