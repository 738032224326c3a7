#!/usr/bin/env bash
# The baseline docs/performance.md compares ktstr's VM start to init against: a plain
#   qemu-system-x86_64 -kernel bzImage -initrd ... -smp N
# boot under TCG with QEMU's defaults, timed from QEMU's start until the kernel gives up
# on a missing init (the moment it would have run it). Prints one line per run.
#
# usage: scripts/plain-qemu-boot.sh BZIMAGE INITRD VCPUS MEMORY_MIB [RUNS]
set -euo pipefail
if [ $# -lt 4 ]; then
    echo "usage: $0 BZIMAGE INITRD VCPUS MEMORY_MIB [RUNS]" >&2
    exit 2
fi
kernel=$1 initrd=$2 vcpus=$3 memory=$4 runs=${5:-3}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for run in $(seq 1 "$runs"); do
    console="$work/console-$run.log"
    : >"$console"
    start=$(date +%s%N)
    qemu-system-x86_64 -accel tcg -m "${memory}M" -smp "$vcpus" \
        -kernel "$kernel" -initrd "$initrd" \
        -append "console=ttyS0 panic=-1 nokaslr quiet rdinit=/no-such-init init=/no-such-init" \
        -serial "file:$console" -display none -nodefaults -no-user-config -no-reboot &
    qemu=$!
    # The kernel says so the moment it finds no init to run.
    until grep -qE "Requested init|No working init found" "$console" 2>/dev/null; do
        if ! kill -0 "$qemu" 2>/dev/null; then
            echo "run $run: QEMU exited before the kernel looked for an init" >&2
            exit 1
        fi
        sleep 0.01
    done
    end=$(date +%s%N)
    kill "$qemu" 2>/dev/null || true
    wait "$qemu" 2>/dev/null || true
    echo "run $run: $vcpus vCPUs, QEMU start to init: $(( (end - start) / 1000000 )) ms"
done
