#!/usr/bin/env bash
# Builds (once, cached) the QEMU that runs the nested-KVM bed's L1 host under TCG: Debian
# bookworm's QEMU 7.2 source with Debian's own patches, plus the bed's fix to TCG's SVM
# (qemu-7.2-svm-evtinj-intr.patch, beside this script). Prints the binary's path.
#
#   scripts/nested-kvm/build-l1-qemu.sh CACHE_DIR
#
# Only the x86_64 system emulator is built (about 2.5 minutes on 2 cores), into
# CACHE_DIR/qemu-7.2.22-<hash of the sources, the patch and the options>/.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
. "$here/../setup.sh"
cache="$1"

version="7.2+dfsg"
debian_rev="7+deb12u18"
pool="https://deb.debian.org/debian/pool/main/q/qemu"
orig="qemu_${version}.orig.tar.xz"
orig_sha="91aca71520040edc40b8d437aa3004dae614f58e286cf653ee8996c07af2962f"
debian="qemu_${version}-${debian_rev}.debian.tar.xz"
debian_sha="28a1c86310ee53b6bf1854cffe6f6be6ed29a08db7d05759f8ac57b8d6a6cb2f"
patch="$here/qemu-7.2-svm-evtinj-intr.patch"
# What virtme-ng's L1 needs (9p, virtio-serial, q35); everything else is left out.
options=(--target-list=x86_64-softmmu --disable-install-blobs --disable-docs --disable-werror
    --enable-virtfs --disable-modules --disable-user --disable-tools --disable-guest-agent
    --disable-gtk --disable-sdl --disable-opengl --disable-spice --disable-vnc --disable-curl
    --disable-rbd --disable-libusb --disable-usb-redir --disable-xen --disable-pa --disable-alsa
    --disable-jack --disable-oss --disable-sndio --disable-dbus-display --disable-capstone
    --disable-fuse --disable-rdma --disable-libiscsi --disable-libnfs --disable-glusterfs
    --disable-bpf --disable-numa --disable-vhost-user-blk-server --enable-trace-backends=nop)

key=$( { echo "$orig_sha $debian_sha ${options[*]}"; cat "$patch"; } | sha256sum | cut -c1-12)
dest="$cache/qemu-7.2.22-$key"
if [ -x "$dest/qemu-system-x86_64" ]; then
    echo "$dest/qemu-system-x86_64"
    exit 0
fi

ensure_apt curl xz-utils patch ninja-build meson pkg-config flex bison \
    libglib2.0-dev libpixman-1-dev libfdt-dev libcap-ng-dev libattr1-dev >&2

src="$cache/src"
mkdir -p "$src"
fetch() { # FILE SHA256
    if ! echo "$2  $src/$1" | sha256sum -c --status 2>/dev/null; then
        echo "nested-kvm: downloading $pool/$1" >&2
        curl -fsSL -o "$src/$1.part" "$pool/$1"
        mv "$src/$1.part" "$src/$1"
        echo "$2  $src/$1" | sha256sum -c --status || {
            echo "nested-kvm: $src/$1 does not have the expected sha256 $2" >&2
            exit 1
        }
    fi
}
fetch "$orig" "$orig_sha"
fetch "$debian" "$debian_sha"

work=$(mktemp -d "$cache/build.XXXXXX")
trap 'rm -rf "$work"' EXIT
echo "nested-kvm: building the L1 QEMU in $work (about 2.5 minutes)" >&2
tar xf "$src/$orig" -C "$work"
tree="$work/qemu-7.2.0"
tar xf "$src/$debian" -C "$tree"
grep -v '^#' "$tree/debian/patches/series" | while read -r name opts; do
    [ -n "$name" ] && patch -d "$tree" -p1 -s $opts < "$tree/debian/patches/$name"
done
patch -d "$tree" -p1 -s < "$patch"
mkdir "$tree/build"
(cd "$tree/build" && ../configure --meson="$(command -v meson)" "${options[@]}" >"$work/configure.log" 2>&1) || {
    tail -n 30 "$work/configure.log" >&2
    exit 1
}
ninja -C "$tree/build" qemu-system-x86_64 >"$work/build.log" 2>&1 || {
    tail -n 30 "$work/build.log" >&2
    exit 1
}
mkdir -p "$work/out"
cp "$tree/build/qemu-system-x86_64" "$work/out/"
rm -rf "$dest"
mv "$work/out" "$dest"
echo "$dest/qemu-system-x86_64"
