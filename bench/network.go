package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
)

// networkSuite times a /bin/true box on a bridge network against one with
// no network (--net=none), the difference being what bridge set-up costs
// (IPAM lease, veth pair, addresses and routes, /etc files), and against
// podman with its netavark bridge on the same busybox image. crun's whole
// `run` of the same busybox bundle is the yardstick the issue sets: bridge
// set-up should cost less than it.
func networkSuite(e environment) suite {
	b := newOCIBench(e, "net")
	dir := filepath.Join(b.dir, "podman")
	const network = "nsbench"
	nsbox := func(args ...string) []string {
		return append([]string{e.nsbox, "--root", filepath.Join(b.dir, "boxes")}, args...)
	}
	podman := func(args ...string) []string {
		return append([]string{"podman", "--root", filepath.Join(dir, "root"), "--runroot", filepath.Join(dir, "run"),
			"--runtime", "crun", "--cgroup-manager", "cgroupfs"}, args...)
	}
	podmanEnv := []string{"CONTAINERS_CONF=" + filepath.Join(dir, "containers.conf")}
	const image = "localhost/nsbox-bench:busybox"
	s := suite{
		name: "net",
		about: "/bin/true with --net=bridge vs --net=none (nsbox run --rootfs, busybox), podman run --network bridge " +
			"(netavark, crun) on the same image, and crun run of the busybox bundle as the yardstick",
		ratios: [][2]string{{"nsbox bridge", "nsbox none"}, {"podman bridge", "nsbox bridge"}},
		clean:  b.clean,
	}
	s.setup = func() error {
		if err := b.setup("true"); err != nil {
			return err
		}
		if _, err := runCommand(nsbox("network", "create", "--subnet", "10.216.0.0/24", network), nil, nil); err != nil {
			return err
		}
		b.undo = append(b.undo, func() error {
			_, err := runCommand(nsbox("network", "rm", network), nil, nil)
			return err
		})
		if err := os.MkdirAll(filepath.Join(dir, "net"), 0o755); err != nil {
			return err
		}
		conf := fmt.Sprintf("[containers]\ndefault_ulimits = []\n[engine]\ncgroup_manager = \"cgroupfs\"\nevents_logger = \"file\"\n"+
			"events_logfile_path = %q\n[network]\nnetwork_config_dir = %q\n", filepath.Join(dir, "events.log"), filepath.Join(dir, "net"))
		if err := os.WriteFile(filepath.Join(dir, "containers.conf"), []byte(conf), 0o644); err != nil {
			return err
		}
		b.undo = append(b.undo, func() error {
			_, err := runCommand(podman("system", "reset", "--force"), podmanEnv, nil)
			return err
		})
		tar := exec.Command("tar", "-C", filepath.Join(b.bundleDir(), "rootfs"), "-c", ".")
		imp := exec.Command(podman("import", "-", image)[0], podman("import", "-", image)[1:]...)
		imp.Env = append(os.Environ(), podmanEnv...)
		var out bytes.Buffer
		imp.Stdout, imp.Stderr = &out, &out
		imp.Stdin, _ = tar.StdoutPipe()
		if err := imp.Start(); err != nil {
			return err
		}
		err := errors.Join(tar.Run(), imp.Wait())
		if err != nil {
			return fmt.Errorf("podman import: %v: %s", err, out.String())
		}
		return nil
	}
	rootfs := filepath.Join(b.bundleDir(), "rootfs")
	s.tools = []*tool{
		{name: "nsbox none", argv: nsbox("run", "--net=none", "--rootfs", rootfs, "--", "/bin/true")},
		{name: "nsbox bridge", argv: nsbox("run", "--net=bridge:"+network, "--rootfs", rootfs, "--", "/bin/true")},
		{name: "podman bridge", argv: podman("run", "--rm", "--network", "bridge", image, "true"), env: podmanEnv},
	}
	for _, r := range b.runtimes {
		if r.name == "crun" {
			s.tools = append(s.tools, &tool{name: "crun run", argv: r.cmd(append(append([]string{"run"}, r.bundle(b.bundleDir())...), idWord)...)})
		}
	}
	s.summary = func(byName map[string]*tool) {
		none, bridge, crun := pct(byName["nsbox none"].times, 50), pct(byName["nsbox bridge"].times, 50), pct(byName["crun run"].times, 50)
		fmt.Printf("bridge set-up (median bridge - none): %s; crun's whole run: %s → %.2fx of it\n",
			ms(bridge-none), ms(crun), float64(bridge-none)/float64(crun))
	}
	return s
}
