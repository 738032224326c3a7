#!/usr/bin/env bash
# The whole test suite, as CI runs it: formatting, lints, then every test of the workspace,
# end-to-end ones included (they build real kernels into the cache on first use).
# Idempotent; installs what is missing first.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/setup.sh
ensure_toolchain
ensure_apt $KERNEL_BUILD_PACKAGES $GUEST_PACKAGES $VMM_TEST_PACKAGES linux-source-6.12 linux-source-6.1

echo "== cargo fmt --check"
cargo fmt --all --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== cargo test"
cargo test --workspace --locked
echo "== fuzzing (every target, bounded)"
./scripts/fuzz.sh --seconds 15
