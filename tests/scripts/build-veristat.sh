#!/usr/bin/env bash
# Builds veristat, the kernel's BPF verifier statistics tool, from Debian's
# linux-source-6.12 into DIR/veristat, for the test that checks `veristat -C` reads
# ktstr's CSV unchanged. Idempotent: a built binary is kept.
set -euo pipefail
out="$1"
[ -x "$out/veristat" ] && exit 0
src=/usr/src/linux-source-6.12.tar.xz
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
tar -xJf "$src" -C "$work" --wildcards \
    '*/tools/testing/selftests/bpf/veristat.c' '*/tools/lib/bpf/*' '*/tools/include/*' \
    '*/tools/arch/*' '*/tools/scripts/*' '*/tools/build/*' \
    '*/include/uapi/linux/bpf.h' '*/scripts/bpf_doc.py'
tree="$(echo "$work"/linux-source-6.12)"
mkdir -p "$work/libbpf" "$work/inst" "$work/uapi/linux" "$out"
make -s -C "$tree/tools/lib/bpf" -j"$(nproc)" BUILD_STATIC_ONLY=1 \
    OUTPUT="$work/libbpf/" DESTDIR="$work/inst" prefix= install >/dev/null
# The UAPI headers of this kernel, not the host's older ones.
cp "$tree/tools/include/uapi/linux/bpf.h" "$tree/tools/include/uapi/linux/btf.h" "$work/uapi/linux/"
gcc -O1 -I"$work/uapi" -I"$work/inst/include" -o "$out/veristat.tmp" \
    "$tree/tools/testing/selftests/bpf/veristat.c" "$work/inst/lib64/libbpf.a" -lelf -lz -lm
mv "$out/veristat.tmp" "$out/veristat"
