#!/usr/bin/env bash
# Runs every libFuzzer target (fuzz/fuzz_targets) for a bounded time and prints, per
# target, the executions and libFuzzer's coverage counts (cov: edges, ft: features).
# The committed corpus (fuzz/corpus/<target>) seeds each run read-only; what a run finds
# goes to a scratch directory. A crash fails the run and names the input.
#
#   scripts/fuzz.sh [--seconds N] [TARGET...]
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/setup.sh

seconds=20
targets=()
while [ $# -gt 0 ]; do
    case "$1" in
        --seconds) seconds="$2"; shift 2 ;;
        -h|--help) sed -n '2,6p' "$0"; exit 0 ;;
        -*) echo "unknown option $1 (see --help)" >&2; exit 2 ;;
        *) targets+=("$1"); shift ;;
    esac
done

PATH="$(ensure_cargo_fuzz):$PATH"
root="$PWD"
cd fuzz
fuzz() { cargo +nightly fuzz "$@" --target-dir "$root/target/fuzz"; }
fuzz build
[ ${#targets[@]} -gt 0 ] || mapfile -t targets < <(cargo +nightly fuzz list)

scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
rows=()
for target in "${targets[@]}"; do
    seeds="corpus/$target"
    [ -d "$seeds" ] || { echo "no corpus for $target: add seeds to fuzz/$seeds" >&2; exit 2; }
    found="$scratch/$target"
    mkdir -p "$found"
    log="$scratch/$target.log"
    # The first directory takes new inputs; the seeds are read from the second.
    if ! fuzz run "$target" "$found" "$seeds" -- \
        -max_total_time="$seconds" -print_final_stats=1 -rss_limit_mb=4096 >"$log" 2>&1; then
        tail -n 60 "$log" >&2
        echo "fuzz target $target failed: the input is under fuzz/artifacts/$target" >&2
        exit 1
    fi
    execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo "?")
    last=$(grep -E '^#[0-9]+' "$log" | tail -n 1)
    cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
    ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
    corp=$(sed -n 's/.* corp: \([0-9]*\).*/\1/p' <<<"$last")
    rows+=("$(printf '%-13s %10s %7s %7s %7s' "$target" "$execs" "${cov:-?}" "${ft:-?}" "${corp:-?}")")
done
printf '%-13s %10s %7s %7s %7s\n' target execs cov ft corpus
printf '%s\n' "${rows[@]}"
echo "fuzzing: ${#targets[@]} target(s), ${seconds} s each, no crashes"
