#!/usr/bin/env bash
# Runs every test of the project, as CI does:
#   formatting and lints, the official HPKV SDKs (npm) against the real binary, the
#   demo page in a real headless Chromium, then all Rust unit, integration and crash
#   tests. Needs Rust, Node 20 with npm, and Chromium at /usr/bin/chromium (or $CHROMIUM).
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n== %s\n' "$*"; }

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (warnings are errors)"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "build the ripplekv binary"
cargo build --locked --bin ripplekv

step "compatibility: official @hpkv SDKs against the real binary"
(
  cd compat
  if ! npm ls --depth=0 >/dev/null 2>&1; then
    npm ci --no-audit --no-fund
  fi
  RIPPLEKV_BIN="$PWD/../target/debug/ripplekv" npm test
)

step "demo page: end-to-end in headless Chromium"
(
  cd e2e
  if ! npm ls --depth=0 >/dev/null 2>&1; then
    npm ci --no-audit --no-fund
  fi
  RIPPLEKV_BIN="$PWD/../target/debug/ripplekv" npm test
)

step "Rust tests"
if cargo nextest --version >/dev/null 2>&1; then
  cargo test --workspace --locked --doc # nextest does not run doc-tests
  cargo nextest run --workspace --locked --no-fail-fast
else
  cargo test --workspace --locked --no-fail-fast
fi
