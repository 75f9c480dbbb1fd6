#!/usr/bin/env bash
# Runs every test of the project, as CI does, and first sets up what they need:
#   rustfmt and clippy, the npm packages (official HPKV SDKs, playwright-core),
#   Chromium for the demo tests, PostgreSQL's and Redis's server programs for the
#   multi-node tests (Debian's packages), and schemathesis (PyPI, in a virtualenv
#   under target/) for the REST contract test.
# Then: formatting and lints, the SDKs against the real binary and against 3 nodes on
# PostgreSQL, the demo page in headless Chromium (both ways too), schemathesis against
# the real binary's /openapi.json, and every Rust test (with cargo-nextest when it is
# installed, else cargo test). A PostgreSQL server is used at RIPPLEKV_TEST_POSTGRES or
# 127.0.0.1:5432, or started privately for the run when none answers there.
# What it cannot install by itself (Rust, Node, Python) it names, with how to get it.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

step() { printf '\n== %s\n' "$*"; }
# Commands that stop what this run started (private PostgreSQL and Redis servers).
on_exit=()
stop_started() {
  local command
  for command in "${on_exit[@]}"; do $command >/dev/null 2>&1 || true; done
}
trap stop_started EXIT
missing() {
  printf '\nerror: %s\n' "$*" >&2
  exit 1
}

# apt-get as root, or through sudo; refuses clearly when neither can install.
apt_install() {
  local as_root=()
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || missing "need root (or sudo) to run: apt-get install $*"
    as_root=(sudo)
  fi
  command -v apt-get >/dev/null || missing "not a Debian-like system: install $* yourself"
  echo "installing $* with apt-get"
  "${as_root[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${as_root[@]}" apt-get install -y -qq "$@"
}

step "set-up"
command -v cargo >/dev/null ||
  missing "cargo is missing: install Rust (stable) with rustup, https://rustup.rs"
for component in rustfmt clippy; do
  if ! cargo "${component/rustfmt/fmt}" --version >/dev/null 2>&1; then
    command -v rustup >/dev/null ||
      missing "cargo $component is missing and rustup is not there to add it"
    rustup component add "$component"
  fi
done
if cargo nextest --version >/dev/null 2>&1; then
  runner=nextest
else
  runner=cargo-test
  echo "cargo-nextest is not installed: running the Rust tests with cargo test" \
    "(cargo install cargo-nextest --locked for the faster runner)"
fi
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  apt_install nodejs npm
fi
node_major=$(node -p 'process.versions.node.split(".")[0]')
[ "$node_major" -ge 18 ] ||
  missing "Node $node_major is too old: the SDK and browser tests need Node 18 or later (20 is tested)"
export CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"
if [ ! -x "$CHROMIUM" ]; then
  apt_install chromium
  [ -x "$CHROMIUM" ] || missing "Chromium is still not at $CHROMIUM: set CHROMIUM to its path"
fi
for dir in compat e2e; do
  if ! (cd "$dir" && npm ls --depth=0 >/dev/null 2>&1); then
    (cd "$dir" && npm ci --no-audit --no-fund)
  fi
done
# The multi-node store's tests start their own PostgreSQL and Redis on free ports, so
# they need the server programs, not running services.
pg_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
if [ -z "$pg_bin" ] && ! command -v pg_ctl >/dev/null; then
  apt_install postgresql
  pg_bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
fi
export RIPPLEKV_PG_BIN="${RIPPLEKV_PG_BIN:-${pg_bin:-$(dirname "$(command -v pg_ctl)")}}"
[ -x "$RIPPLEKV_PG_BIN/pg_ctl" ] || missing "PostgreSQL's pg_ctl is not in $RIPPLEKV_PG_BIN: set RIPPLEKV_PG_BIN"
command -v psql >/dev/null || apt_install postgresql-client
command -v redis-server >/dev/null || apt_install redis-server
command -v redis-cli >/dev/null || apt_install redis-tools
command -v python3 >/dev/null || apt_install python3 python3-venv
venv=target/python
if [ ! -x "$venv/bin/schemathesis" ]; then
  python3 -m venv "$venv" 2>/dev/null || {
    apt_install python3-venv
    rm -rf "$venv"
    python3 -m venv "$venv"
  }
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r scripts/requirements.txt
fi

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (warnings are errors)"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "build the ripplekv binary"
cargo build --locked --bin ripplekv
export RIPPLEKV_BIN="$PWD/target/debug/ripplekv"
[ -x "$RIPPLEKV_BIN" ] || missing "the build did not produce $RIPPLEKV_BIN"

step "PostgreSQL for the PostgreSQL store's tests and the cluster runs"
# The PostgreSQL store's tests and the cluster runs of the SDK and browser suites make
# a database of their own on RIPPLEKV_TEST_POSTGRES (by default the server on
# 127.0.0.1:5432). Where none runs, start a private one for this run.
if [ -z "${RIPPLEKV_TEST_POSTGRES:-}" ] && ! "$RIPPLEKV_PG_BIN/pg_isready" -q -h 127.0.0.1 -p 5432; then
  pg_dir="$PWD/target/test-postgres"
  pg_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  as_pg=()
  if [ "$(id -u)" = 0 ]; then as_pg=(runuser -u postgres --); fi
  rm -rf "$pg_dir" && mkdir -p "$pg_dir" && chmod 777 "$pg_dir"
  "${as_pg[@]}" "$RIPPLEKV_PG_BIN/initdb" -D "$pg_dir/data" -U postgres --auth=trust >/dev/null
  "${as_pg[@]}" "$RIPPLEKV_PG_BIN/pg_ctl" -D "$pg_dir/data" -l "$pg_dir/log" -w \
    -o "-p $pg_port -k $pg_dir -c listen_addresses=127.0.0.1" start >/dev/null
  on_exit+=("${as_pg[*]} $RIPPLEKV_PG_BIN/pg_ctl -D $pg_dir/data -m fast stop")
  export RIPPLEKV_TEST_POSTGRES="postgres://postgres@127.0.0.1:$pg_port/postgres"
  echo "started a private PostgreSQL for this run at $RIPPLEKV_TEST_POSTGRES"
else
  echo "using ${RIPPLEKV_TEST_POSTGRES:-postgres://postgres@127.0.0.1:5432/postgres}"
fi

step "Redis for the cluster runs with a Redis bus"
# The cluster runs use RIPPLEKV_TEST_REDIS (by default the server on 127.0.0.1:6379;
# each cluster has a channel of its own). Where none runs, start a private one.
if [ -z "${RIPPLEKV_TEST_REDIS:-}" ] && ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
  redis_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no --daemonize yes \
    --pidfile "$PWD/target/test-redis.pid" >/dev/null
  on_exit+=("redis-cli -p $redis_port shutdown nosave")
  export RIPPLEKV_TEST_REDIS="redis://127.0.0.1:$redis_port"
  echo "started a private Redis for this run at $RIPPLEKV_TEST_REDIS"
else
  export RIPPLEKV_TEST_REDIS="${RIPPLEKV_TEST_REDIS:-redis://127.0.0.1:6379}"
  echo "using $RIPPLEKV_TEST_REDIS"
fi

step "compatibility: official @hpkv SDKs against the real binary"
(cd compat && npm test)

step "compatibility: the same SDK suites against 3 nodes on PostgreSQL"
(cd compat && RIPPLEKV_CLUSTER=3 npm test)

step "compatibility: the same SDK suites against 3 nodes with a Redis bus"
(cd compat && RIPPLEKV_CLUSTER=3 RIPPLEKV_CLUSTER_BUS="$RIPPLEKV_TEST_REDIS" npm test)

step "demo page: end-to-end in headless Chromium"
(cd e2e && npm test)

step "demo page: the same browser tests against 3 nodes on PostgreSQL"
(cd e2e && RIPPLEKV_CLUSTER=3 npm test)

step "REST contract: schemathesis against the real binary's /openapi.json"
bash scripts/contract.sh "$venv/bin/schemathesis"

step "container image"
if command -v docker >/dev/null && docker info >/dev/null 2>&1; then
  bash scripts/docker-test.sh
else
  # The packaging tests (crates/cli/tests/packaging.rs) still check the Dockerfile and
  # run its command line and healthcheck with this build's binary.
  echo "not built: no Docker daemon here (bash scripts/docker-test.sh where there is one)"
fi

step "Rust tests"
if [ "$runner" = nextest ]; then
  cargo test --workspace --locked --doc # nextest does not run doc-tests
  cargo nextest run --workspace --locked --no-fail-fast
else
  cargo test --workspace --locked --no-fail-fast
fi
