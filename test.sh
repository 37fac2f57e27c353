#!/usr/bin/env bash
# Installs what nsbox's tests need and runs every test: unit tests, the
# privileged and rootless integration tests, and a short side-by-side bench.
# Run it as root, as CI does: privileged tests never skip when run here
# (NSBOX_REQUIRE_ALL=1 turns a skip into a failure).
set -euo pipefail
cd "$(dirname "$0")"
export PATH="/usr/local/go/bin:/usr/sbin:/sbin:$PATH"
export DEBIAN_FRONTEND=noninteractive

if [ "$(id -u)" -ne 0 ]; then
	echo "test.sh: run as root (sudo ./test.sh): the tests create namespaces, mounts and users" >&2
	exit 1
fi

packages=(
	busybox-static # the test root filesystem
	bubblewrap     # side-by-side benchmark
	uidmap         # newuidmap/newgidmap for rootless full-range maps
	util-linux     # unshare, ipcmk, ipcrm
	iproute2       # ip netns
	passwd         # useradd for the rootless test users
	procps         # ps
	time           # /usr/bin/time: peak RSS in the benchmark
	nftables       # nft: the tests restore the tables podman's netavark leaves
	podman         # a real client of the OCI runtime (with conmon and netavark)
	containerd     # the other one: ctr and the runc shim, as Kubernetes uses
	runc crun      # side-by-side benchmark of the OCI runtime
	passt slirp4netns # rootless networking (--net=pasta, --net=slirp4netns)
	qemu-system-x86   # boots the cgroup v2 guest (tests/vm_test.go)
	linux-image-amd64 # its kernel, /boot/vmlinuz-*, and ext4/brd modules
)
missing=()
for p in "${packages[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	echo "== installing ${missing[*]}"
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

echo "== $(go version)"
echo "== go vet"
go vet ./...
echo "== tests (unit, privileged, rootless)"
NSBOX_REQUIRE_ALL=1 go test -count=1 ./...
echo "== bench (short run; 'go run ./bench' for the full one)"
go run ./bench -n 20 -warmup 3
