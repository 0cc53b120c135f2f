#!/usr/bin/env bash
# funneld quick start on Debian 12: install what is missing, build, then
#   run   start funneld in the foreground with its built-in defaults
#   test  run the whole suite (unit + end-to-end), then again under
#         AddressSanitizer + UndefinedBehaviorSanitizer
#   build only build (into ./build)
# Installing packages needs root: run as root or with sudo available.
set -euo pipefail

cd "$(dirname "$0")/.."
top=$(pwd)
mode=${1:-run}
jobs=$(nproc 2>/dev/null || echo 2)

packages=(build-essential cmake pkg-config
          libzmq3-dev libprotobuf-c-dev protobuf-c-compiler liblmdb-dev
          libevent-dev libcyaml-dev libyaml-dev libjansson-dev libsystemd-dev
          libcmocka-dev protobuf-compiler python3 python3-zmq python3-protobuf
          python3-pytest lmdb-utils)

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

build() { # build DIR [cmake options...]
  local dir=$1
  shift
  cmake -S "$top" -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@" >/dev/null
  cmake --build "$dir" -j "$jobs"
}

case "$mode" in
  build)
    build build
    ;;
  run)
    build build
    echo "quickstart: starting funneld (state in ./var/funneld; Ctrl-C stops it)" >&2
    exec ./build/daemon/funneld
    ;;
  test)
    build build
    (cd build && ctest --output-on-failure -j "$jobs")
    build build-sanitize -DFUNNELD_SANITIZE=ON
    (cd build-sanitize &&
      ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
      UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
      ctest --output-on-failure -j "$jobs")
    ;;
  *)
    echo "usage: $0 run|test|build" >&2
    exit 2
    ;;
esac
