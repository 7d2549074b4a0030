#!/usr/bin/env bash
# Installs dependencies, builds into build/ and runs the whole test suite with ctest.
# Extra arguments go to ctest (e.g. -R raft_ -V).
set -euo pipefail
cd "$(dirname "$0")/.."

./deploy/install-deps.sh

export CCACHE_DIR="${CCACHE_DIR:-$HOME/.cache/ccache}"
JOBS="${JOBS:-$(nproc)}"
GENERATOR=()
if command -v ninja >/dev/null; then GENERATOR=(-G Ninja); fi
if [ ! -f build/CMakeCache.txt ]; then
  cmake -S . -B build "${GENERATOR[@]}" -DCMAKE_BUILD_TYPE=RelWithDebInfo
fi
cmake --build build -j "$JOBS"
ctest --test-dir build --output-on-failure -j "$JOBS" "$@"
