#!/usr/bin/env bash
# The whole test suite, as CI runs it: formatting, lints, then every test of the workspace.
# Idempotent; installs what is missing first.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/setup.sh
ensure_toolchain

echo "== cargo fmt --check"
cargo fmt --all --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== cargo test"
cargo test --workspace --locked
