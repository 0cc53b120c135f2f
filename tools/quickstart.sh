#!/usr/bin/env bash
# funneld quick start on Debian 12: install what is missing, build, then
#   run   start funneld in the foreground with its built-in defaults
#   test  run the whole suite (unit + end-to-end), then again under
#         AddressSanitizer + UndefinedBehaviorSanitizer, then under
#         ThreadSanitizer, then each libFuzzer target for a bounded time
#         (when clang is there)
#   build only build (into ./build)
# Installing packages needs root: run as root or with sudo available.
set -euo pipefail

cd "$(dirname "$0")/.."
top=$(pwd)
mode=${1:-run}
jobs=$(nproc 2>/dev/null || echo 2)

packages=(build-essential cmake pkg-config
          libzmq3-dev libprotobuf-c-dev protobuf-c-compiler liblmdb-dev zlib1g-dev libxxhash-dev
          libevent-dev libcyaml-dev libyaml-dev libjansson-dev libsystemd-dev
          libcmocka-dev protobuf-compiler python3 python3-zmq python3-protobuf
          python3-pytest lmdb-utils clang libclang-rt-14-dev
          libnats-dev nats-server
          scdoc dpkg-dev systemd man-db
          prometheus  # prometheus: promtool, for the /metrics tests
          chromium chromium-driver python3-selenium)  # the dashboard's browser tests

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
    missing+=("$p")
done
if ((${#missing[@]})); then
  echo "quickstart: installing ${missing[*]}" >&2
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# The Node client examples' packages (zeromq, protobufjs) into
# examples/node/node_modules, from its package-lock.json: their tests
# (e2e.test_examples_node) fail without them, unless FUNNELD_SKIP_NODE=1.
node_deps() {
  if [ "${FUNNELD_SKIP_NODE:-}" = 1 ]; then
    return 0
  fi
  if ! command -v npm >/dev/null; then
    echo "quickstart: installing nodejs npm" >&2
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends nodejs npm
  fi
  (cd examples/node && npm ci --no-audit --no-fund --loglevel=error)
}

build() { # build DIR [cmake options...]
  local dir=$1
  shift
  cmake -S "$top" -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@" >/dev/null
  cmake --build "$dir" -j "$jobs"
}

# Run each libFuzzer target for a bounded time (FUZZ_SECONDS, default 40 for
# the ingest path, a third of it for each loader). New inputs go to a scratch
# corpus; a crash is written into tests/fuzz/corpus/<target>/ (crash-*), where
# it stays as a regression input that every build replays (ctest fuzz.corpus.*).
fuzz() {
  if ! command -v clang >/dev/null; then
    echo "quickstart: clang not found: fuzz run skipped" >&2
    return 0
  fi
  CC=clang cmake -S "$top" -B build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DFUNNELD_FUZZ=ON >/dev/null
  cmake --build build-fuzz -j "$jobs" --target fuzz_ingest fuzz_definition fuzz_config
  local secs=${FUZZ_SECONDS:-40} t s
  for t in ingest definition config; do
    s=$secs
    [ "$t" = ingest ] || s=$((secs / 3 > 0 ? secs / 3 : 1))
    mkdir -p "build-fuzz/work/$t"
    echo "quickstart: fuzzing $t for ${s}s" >&2
    ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
      "build-fuzz/tests/fuzz/fuzz_$t" -max_total_time="$s" -print_final_stats=1 \
      -artifact_prefix="$top/tests/fuzz/corpus/$t/crash-" \
      "build-fuzz/work/$t" "$top/tests/fuzz/corpus/$t" 2>"build-fuzz/fuzz-$t.log" || {
      tail -40 "build-fuzz/fuzz-$t.log" >&2
      echo "quickstart: fuzz_$t found a crash, kept in tests/fuzz/corpus/$t/" >&2
      return 1
    }
    grep -E "stat::number_of_executed_units|Done [0-9]+ runs" "build-fuzz/fuzz-$t.log" >&2 || true
  done
}

case "$mode" in
  build)
    build build
    ;;
  run)
    build build
    echo "quickstart: starting funneld (state in ./var/funneld; Ctrl-C stops it)" >&2
    http=$(./build/daemon/funneld --dump-config | sed -n 's/^http: "\(.*\)"$/\1/p')
    [ -z "$http" ] || echo "quickstart: the dashboard is at http://$http/" >&2
    exec ./build/daemon/funneld
    ;;
  test)
    node_deps
    build build
    (cd build && ctest --output-on-failure -j "$jobs")
    build build-sanitize -DFUNNELD_SANITIZE=ON
    (cd build-sanitize &&
      ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
      UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
      ctest --output-on-failure -j "$jobs")
    # The query thread reads the store while the loop thread writes it.
    build build-tsan -DFUNNELD_TSAN=ON
    (cd build-tsan &&
      TSAN_OPTIONS="suppressions=$top/tests/tsan.supp halt_on_error=1" \
      ctest --output-on-failure -j "$jobs")
    fuzz
    ;;
  *)
    echo "usage: $0 run|test|build" >&2
    exit 2
    ;;
esac
