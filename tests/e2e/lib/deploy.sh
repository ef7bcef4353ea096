# Helpers of the deploy_* tests: a Debian 12 minbase tree made by debootstrap from the mirror apt uses, and
# podman/buildah on a storage of their own. Both are kept between runs in one directory outside the
# repository, so that a second run does not download or build again:
#
#   $FX_DEPLOY_CACHE (default /var/tmp/fx-deploy-cache)
#     rootfs-bookworm/     the debootstrap --variant=minbase tree (never modified; tests copy it)
#     containers/          podman and buildah storage (--root): the imported base image, the build cache,
#                          the image built by deploy_image
#     lock                 flock: one test at a time creates the tree or imports the base image
#
# Everything works from an empty cache (a fresh machine): debootstrap takes about a minute, the image
# build a few more. FX_DEPLOY_CACHE=<empty dir> forces a cold run. This file is sourced after common.sh.
# shellcheck shell=bash

FX_DEPLOY_CACHE=${FX_DEPLOY_CACHE:-/var/tmp/fx-deploy-cache}
DEPLOY_ROOTFS="$FX_DEPLOY_CACHE/rootfs-bookworm"
# overlay needs a cache on a file system the kernel's overlayfs accepts (ext4, xfs: not overlayfs itself, as
# inside some CI containers); there, FX_DEPLOY_STORAGE_DRIVER=vfs (slower, more disk) works everywhere. Each
# driver has its own storage (they cannot share one).
DEPLOY_STORAGE_DRIVER=${FX_DEPLOY_STORAGE_DRIVER:-overlay}
DEPLOY_STORAGE="$FX_DEPLOY_CACHE/containers"
[[ $DEPLOY_STORAGE_DRIVER == overlay ]] || DEPLOY_STORAGE+="-$DEPLOY_STORAGE_DRIVER"
# The name the Dockerfile's FROM resolves to (docker.io/library/... is what "debian:bookworm-slim" means).
DEPLOY_BASE_IMAGE=docker.io/library/debian:bookworm-slim

# Containers the test started (removed when it ends, before common.sh's cleanup stops the processes), and
# an optional command run first (e.g. to save a container's journal for the failure report).
DEPLOY_CONTAINERS=()
DEPLOY_ON_EXIT=""
deploy_exit() {
	local status=$? container
	set +e # a failing removal must not skip the cleanup
	if [[ -n $DEPLOY_ON_EXIT ]]; then eval "$DEPLOY_ON_EXIT" >/dev/null 2>&1; fi
	for container in "${DEPLOY_CONTAINERS[@]}"; do
		fx_podman rm -f -t 5 "$container" >/dev/null 2>&1
	done
	(exit "$status")
	cleanup
}
trap deploy_exit EXIT

# require_root_tools TOOL...: the deploy tests run as root with the tools deploy/install-deps.sh installs.
require_root_tools() {
	((EUID == 0)) || fail "the deploy tests run as root (chroot, debootstrap, podman)"
	local tool
	for tool in "$@"; do
		command -v "$tool" >/dev/null || fail "$tool is missing (deploy/install-deps.sh installs it)"
	done
}

# debian_mirror: the Debian archive apt on this machine uses (deb822 .sources first, then sources.list).
debian_mirror() {
	local file line
	for file in /etc/apt/sources.list.d/*.sources; do
		[[ -f $file ]] || continue
		# The stanza whose Suites include bookworm and whose URI is a debian archive (not -security).
		if grep -qE '^Suites:.*\bbookworm\b' "$file"; then
			line=$(grep -E '^URIs:' "$file" | grep -v -- '-security' | head -n1 | awk '{print $2}')
			if [[ -n $line ]]; then
				printf '%s\n' "${line%/}"
				return 0
			fi
		fi
	done
	for file in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
		[[ -f $file ]] || continue
		line=$(grep -E '^deb\s+(\[[^]]*\]\s+)?https?://\S+\s+bookworm\s' "$file" | head -n1 |
			sed -E 's/^deb\s+(\[[^]]*\]\s+)?//' | awk '{print $1}') || true
		if [[ -n $line ]]; then
			printf '%s\n' "${line%/}"
			return 0
		fi
	done
	printf '%s\n' http://deb.debian.org/debian
}

# with_cache_lock COMMAND...: runs COMMAND holding the cache's lock (other deploy tests wait).
with_cache_lock() {
	mkdir -p "$FX_DEPLOY_CACHE"
	(
		flock -w 900 9 || fail "could not lock $FX_DEPLOY_CACHE/lock within 15 minutes"
		"$@"
	) 9>"$FX_DEPLOY_CACHE/lock"
}

make_rootfs() {
	[[ -e $DEPLOY_ROOTFS/.complete ]] && return 0
	local mirror work="$DEPLOY_ROOTFS.tmp.$$"
	mirror=$(debian_mirror)
	log "debootstrap --variant=minbase bookworm from $mirror (once; kept in $DEPLOY_ROOTFS)"
	rm -rf "$DEPLOY_ROOTFS" "$work"
	if ! debootstrap --variant=minbase bookworm "$work" "$mirror" >"$TEST_TMP/debootstrap.log" 2>&1; then
		rm -rf "$work"
		fail "debootstrap failed (see debootstrap.log)"
	fi
	# What debootstrap downloaded is not part of a slim image.
	rm -f "$work"/var/cache/apt/archives/*.deb
	: >"$work/.complete"
	mv "$work" "$DEPLOY_ROOTFS"
}

# deploy_rootfs: makes sure the pristine minbase tree exists (DEPLOY_ROOTFS).
deploy_rootfs() {
	with_cache_lock make_rootfs
}

# fx_podman / fx_buildah ARGS...: the tools on the cache's storage, so that they touch nothing else here.
fx_podman() {
	podman --root "$DEPLOY_STORAGE/storage" --runroot "$DEPLOY_STORAGE/run" --storage-driver "$DEPLOY_STORAGE_DRIVER" "$@"
}
fx_buildah() {
	buildah --root "$DEPLOY_STORAGE/storage" --runroot "$DEPLOY_STORAGE/run" --storage-driver "$DEPLOY_STORAGE_DRIVER" "$@"
}

import_base_image() {
	if fx_podman image exists "$DEPLOY_BASE_IMAGE"; then
		return 0
	fi
	log "podman import the minbase tree as $DEPLOY_BASE_IMAGE"
	tar -C "$DEPLOY_ROOTFS" --numeric-owner --exclude=./.complete --exclude='./var/lib/apt/lists/*' \
		--exclude='./var/cache/apt/*.bin' -cf - . |
		fx_podman import --change 'CMD ["bash"]' - "$DEPLOY_BASE_IMAGE" >"$TEST_TMP/import.log" 2>&1 ||
		fail "podman import failed (see import.log)"
}

# deploy_base_image: makes sure debian:bookworm-slim exists in the cache's storage.
deploy_base_image() {
	deploy_rootfs
	with_cache_lock import_base_image
}

# in_root ROOT COMMAND...: runs COMMAND chrooted in ROOT with /proc, a minimal /dev and apt's download
# cache ($FX_DEPLOY_CACHE/apt-archives, kept between runs) mounted in a private mount namespace: the mounts
# end with the process, whatever happens to the test. No fork: the command keeps the PID this starts.
in_root() {
	local root=$1
	shift
	mkdir -p "$FX_DEPLOY_CACHE/apt-archives/partial"
	unshare --mount --propagation private -- /bin/bash -c '
		set -e
		root=$1 archives=$2
		shift 2
		mount -t proc proc "$root/proc"
		mount -t tmpfs -o mode=0755,size=1m dev "$root/dev"
		for node in null:1:3 zero:1:5 full:1:7 random:1:8 urandom:1:9 tty:5:0; do
			IFS=: read -r name major minor <<<"$node"
			mknod -m 0666 "$root/dev/$name" c "$major" "$minor"
		done
		mkdir "$root/dev/shm" "$root/dev/pts"
		mount -t tmpfs -o mode=1777 shm "$root/dev/shm"
		ln -s /proc/self/fd "$root/dev/fd"
		mount --bind "$archives" "$root/var/cache/apt/archives"
		exec chroot "$root" "$@"
	' in_root "$root" "$FX_DEPLOY_CACHE/apt-archives" "$@"
}

# new_root DIR: a fresh copy of the pristine minbase tree at DIR, with this machine's resolv.conf.
new_root() {
	deploy_rootfs
	cp -a "$DEPLOY_ROOTFS" "$1"
	rm -f "$1/.complete"
	cp -L /etc/resolv.conf "$1/etc/resolv.conf"
}

# build_deb OUTDIR: the Debian package of this source tree, made by CPack in the build tree of FX_BIN (a
# sanitizer build is not shipped: then a plain build kept in the cache is made and used instead); prints
# the .deb's path.
build_deb() {
	local out=$1 build
	build=$(dirname "$FX_BIN")
	[[ -f $build/CPackConfig.cmake ]] || fail "no CPackConfig.cmake next to $FX_BIN"
	if grep -qE '^FX_(SANITIZE|TSAN):BOOL=ON' "$build/CMakeCache.txt"; then
		build="$FX_DEPLOY_CACHE/build-plain"
		log "FX_BIN is a sanitizer build: packaging a plain build in $build"
		with_cache_lock plain_build "$build" >&2
	fi
	# cpack would first build the tree's "preinstall" target (all of it): in a tree whose sources changed
	# since the build, that relinks FX_BIN under the tests running in parallel. So CPack runs the tree's
	# install script itself, as its own install step does (prefix /usr, stripped), and builds nothing.
	cat >"$TEST_TMP/install-from-build.cmake" <<-EOF
		set(CMAKE_INSTALL_PREFIX /usr)
		set(CMAKE_INSTALL_DO_STRIP 1)
		include("$build/cmake_install.cmake")
	EOF
	cpack --config "$build/CPackConfig.cmake" -B "$out" -D CPACK_INSTALL_CMAKE_PROJECTS= \
		-D CPACK_INSTALL_SCRIPTS="$TEST_TMP/install-from-build.cmake" >"$TEST_TMP/cpack.log" 2>&1 ||
		fail "cpack failed (see cpack.log)"
	local deb
	deb=$(find "$out" -maxdepth 1 -name 'flow-exporter_*.deb' | head -n1)
	[[ -n $deb ]] || fail "cpack made no flow-exporter_*.deb (see cpack.log)"
	printf '%s\n' "$deb"
}

plain_build() {
	cmake -S "$FX_SOURCE" -B "$1" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_SKIP_INSTALL_ALL_DEPENDENCY=ON >/dev/null &&
		cmake --build "$1" -j"$(nproc)" --target flow-exporter >/dev/null
}
