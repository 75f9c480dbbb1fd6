#!/usr/bin/env bash
# Crash loop: 20 cycles of `kill -9` against the real binary under durable write load
# (4 connections doing SET, DELETE and ATOMIC), checking after every restart that each
# acknowledged SET is there with its value, each acknowledged DELETE stayed deleted,
# and each counter holds at least its last acknowledged value.
#
#   bash bench/crash-loop.sh [CYCLES]      # default 20
set -euo pipefail
cd "$(dirname "$0")/.."
cycles="${1:-20}"
started=$(date +%s)
RIPPLEKV_CRASH_CYCLES="$cycles" cargo test -p ripplekv --test crash -- --nocapture 2>&1 |
  grep -E "checked|group commit|test result|panicked|lost|undone"
echo "crash loop: $cycles cycles in $(( $(date +%s) - started )) s"
