#!/usr/bin/env bash
# Builds the Linux 6.12 tree's own example sched_ext schedulers (scx_simple, scx_qmap,
# scx_central, scx_flatcg) from Debian's linux-source-6.12 into DIR/bin, with apt's clang-19
# and the tree's own libbpf and bpftool; VMLINUX gives vmlinux.h its BTF. About 20 s.
# Idempotent: a complete DIR is kept.
set -euo pipefail
out="$1"
vmlinux="$2"
names=(scx_simple scx_qmap scx_central scx_flatcg)
complete() { for n in "${names[@]}"; do [ -x "$out/bin/$n" ] || return 1; done; }
complete && exit 0
src=/usr/src/linux-source-6.12.tar.xz
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
tar -xJf "$src" -C "$work" --wildcards '*/tools/*' '*/include/uapi/*' '*/scripts/*' \
    '*/kernel/bpf/*'
tree="$(echo "$work"/linux-source-6.12)"
mkdir -p "$work/out"
make -s -C "$tree/tools/sched_ext" -j"$(nproc)" O="$work/out" CLANG=clang-19 \
    LLVM_STRIP=llvm-strip-19 VMLINUX_BTF="$vmlinux" >"$work/build.log" 2>&1 \
    || { tail -40 "$work/build.log" >&2; exit 1; }
# Installed by one rename, so a DIR is either complete or absent.
mkdir -p "$(dirname "$out")"
staged="$(mktemp -d "$(dirname "$out")/.examples-XXXXXX")"
mkdir -p "$staged/bin"
for n in "${names[@]}"; do cp "$work/out/build/bin/$n" "$staged/bin/"; done
rm -rf "$out"
mv "$staged" "$out"
