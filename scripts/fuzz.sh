#!/usr/bin/env bash
# Runs every cargo-fuzz target (fuzz/fuzz_targets) for a bounded time each.
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]    default: 60 s each, all targets
#   FUZZ_SECONDS=300 scripts/fuzz.sh         the same, time from the environment
#   FUZZ_SANITIZER=none scripts/fuzz.sh      without AddressSanitizer (faster)
#
# Only stable Rust is installed here; cargo-fuzz needs nightly compiler flags
# (-Zsanitizer, sancov passes), which stable accepts with RUSTC_BOOTSTRAP=1. The
# growing corpus is kept in fuzz/corpus/TARGET (git-ignored); the hand-written seeds
# in fuzz/seeds/TARGET are read too but never written. Exits non-zero if any target
# crashes; libFuzzer leaves the crashing input in fuzz/artifacts/TARGET.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${1:-${FUZZ_SECONDS:-60}}"
shift $(( $# > 0 ? 1 : 0 ))
case "$seconds" in
  '' | *[!0-9]*) echo "usage: scripts/fuzz.sh [SECONDS] [TARGET...] (SECONDS first)" >&2; exit 2 ;;
esac
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  targets=(request pattern)
fi

export RUSTC_BOOTSTRAP=1
# Two cores, often shared with another build: compile one crate at a time.
export CARGO_BUILD_JOBS="${CARGO_BUILD_JOBS:-1}"

if ! cargo fuzz --version >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked
fi

cd fuzz
failed=()
for target in "${targets[@]}"; do
  mkdir -p "corpus/$target"
  log="$(mktemp)"
  echo "== fuzzing $target for ${seconds}s"
  status=0
  cargo fuzz run --sanitizer "${FUZZ_SANITIZER:-address}" "$target" \
    "corpus/$target" "seeds/$target" -- \
    -max_total_time="$seconds" -dict="dicts/$target.dict" -print_final_stats=1 \
    >"$log" 2>&1 || status=$?
  # The full log is long; keep the final stats and anything about a crash.
  grep -E 'stat::number_of_executed_units|stat::average_exec_per_sec|Done [0-9]+ runs|ERROR|panicked|SUMMARY|Test unit written' "$log" || true
  if [ "$status" -ne 0 ]; then
    tail -n 40 "$log"
    failed+=("$target")
  fi
  rm -f "$log"
done

if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz: crash in: ${failed[*]} (inputs in fuzz/artifacts/)" >&2
  exit 1
fi
echo "fuzz: no crash in ${targets[*]} (${seconds}s each)"
