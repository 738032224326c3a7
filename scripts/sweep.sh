#!/usr/bin/env bash
# The main job on a fresh machine: installs what is missing, builds ktstr, the guest init,
# the fixture scheduler and (once, cached) a sched_ext kernel from Debian's source, then
# runs a real verifier sweep on the built-in defaults. Extra arguments go to
# `ktstr verifier` (e.g. `tiny-1llc`, `--kernel 6.12..=6.12.999`). Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/setup.sh
ensure_toolchain
ensure_apt $KERNEL_BUILD_PACKAGES $GUEST_PACKAGES linux-source-6.12

cargo build --release --locked -p ktstr -p ktstr-guest-init -p scx-ktstr
./target/release/ktstr kernel build
exec ./target/release/ktstr verifier "$@"
