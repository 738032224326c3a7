#!/usr/bin/env bash
# The nested-KVM test bed: runs a command inside an L1 "host" kernel booted by virtme-ng
# under QEMU's TCG, where QEMU's emulated AMD SVM gives a real /dev/kvm (kvm_amd). The L1
# sees this machine's root over 9p, so the command runs the same ktstr binary against the
# same kernel cache, on real KVM. See docs/nested-kvm.md.
#
#   scripts/nested-kvm.sh [--ktstr PATH] [--timeout S] [--memory SIZE] [--cpus N]
#                         [--l1-qemu PATH] -- COMMAND...
#
# Builds (once, cached) the L1 kernel, the ktstr variant `<version>+kvm_host` of
# scripts/nested-kvm/kvm-host.kconfig, and the L1's QEMU (Debian's 7.2 with a fix to TCG's
# SVM, scripts/nested-kvm/build-l1-qemu.sh), and installs virtme-ng into a venv in the cache.
# --ktstr names the ktstr binary that builds kernels (default: a release build made here);
# --l1-qemu another QEMU for L1 (e.g. qemu-system-x86_64, to see the bed without the fix).
# Exits with the command's status; 125 when the L1 itself died, hung or its kernel faulted
# (its console or log is printed), so a crash of the host is never read as a verdict.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/setup.sh

timeout_s=1800
memory=6G
cpus=2
ktstr=""
l1_qemu=""
usage="usage: nested-kvm.sh [--ktstr PATH] [--timeout S] [--memory SIZE] [--cpus N] [--l1-qemu PATH] -- COMMAND..."
while [ $# -gt 0 ]; do
    case "$1" in
        --ktstr) ktstr="$2"; shift 2 ;;
        --timeout) timeout_s="$2"; shift 2 ;;
        --memory) memory="$2"; shift 2 ;;
        --cpus) cpus="$2"; shift 2 ;;
        --l1-qemu) l1_qemu="$2"; shift 2 ;;
        --) shift; break ;;
        *) echo "nested-kvm.sh: unknown option $1 ($usage)" >&2; exit 2 ;;
    esac
done
if [ $# -eq 0 ]; then
    echo "nested-kvm.sh: no command ($usage)" >&2
    exit 2
fi

ensure_toolchain
ensure_apt $KERNEL_BUILD_PACKAGES $GUEST_PACKAGES linux-source-6.12 python3-venv

cache="${KTSTR_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/ktstr}"
venv="$cache/nested-kvm/venv-virtme-ng-1.42"
if [ ! -x "$venv/bin/vng" ]; then
    echo "nested-kvm: installing virtme-ng 1.42 into $venv"
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q "virtme-ng==1.42"
fi

if [ -z "$l1_qemu" ]; then
    l1_qemu=$(scripts/nested-kvm/build-l1-qemu.sh "$cache/nested-kvm")
fi

if [ -z "$ktstr" ]; then
    cargo build --release --locked -p ktstr -p ktstr-guest-init -p scx-ktstr
    ktstr=./target/release/ktstr
fi
# The guest kernel first (the sweep's default), then the L1 host variant.
"$ktstr" kernel build >&2
l1_dir=$("$ktstr" kernel build --kconfig scripts/nested-kvm/kvm-host.kconfig | sed -n 's/^kernel .* in //p')
if [ ! -f "$l1_dir/bzImage" ]; then
    echo "nested-kvm: the L1 kernel build did not name its cache entry" >&2
    exit 1
fi

log=$(mktemp -t ktstr-nested-kvm.XXXXXX)
trap 'rm -f "$log"' EXIT
marker="ktstr-nested-kvm-exit:"
fault="ktstr-nested-kvm-l1-fault"
# The command's status is printed as the L1's last word; its absence means the L1 died.
# Its output goes through a pipe, so no progress bar is drawn on L1's console. An L1 kernel
# that oopsed or warned may have killed or corrupted the command's VMs: its dmesg (never
# an L2's console) is checked, and such a run's results are void.
inner="cd $(printf '%q' "$PWD") && { { $(printf '%q ' "$@"); } 2>&1; echo \"$marker \$?\"; } | cat; \
if dmesg | grep -qE '(^|\] )(Oops|BUG|WARNING|Kernel panic)'; then echo $fault; dmesg | grep -A12 -E '(^|\] )(Oops|BUG|WARNING)' | head -n 40; fi"
set +e
PATH="$venv/bin:$PATH" timeout --kill-after=10 "$timeout_s" "$venv/bin/vng" -r "$l1_dir/bzImage" \
    --qemu "$l1_qemu" --disable-kvm --force-9p --cpus "$cpus" --memory "$memory" \
    --qemu-opts='-cpu max -L /usr/share/qemu -L /usr/share/seabios' \
    --append 'root=/dev/root oops=panic panic=-1' \
    --rwdir "$cache" --rwdir "$PWD" \
    -v -e "$inner" 2>&1 | tee "$log"
vng_status=${PIPESTATUS[0]}
set -e
status=$(sed -n "s/.*$marker \([0-9]*\).*/\1/p" "$log" | tail -n 1)
if grep -q "^$fault" "$log"; then
    echo "nested-kvm: ERROR the L1 host kernel faulted while the command ran (its log above); the command's results are void" >&2
    exit 125
fi
if [ -z "$status" ]; then
    if [ "$vng_status" -eq 124 ] || [ "$vng_status" -eq 137 ]; then
        why="hung: no word after ${timeout_s} s"
    else
        why="died (virtme-ng exit $vng_status)"
    fi
    echo "nested-kvm: ERROR the L1 host $why before the command finished; last console lines:" >&2
    tail -n 30 "$log" >&2
    exit 125
fi
exit "$status"
