#!/usr/bin/env bash
# Sets up (packages), builds and runs every test: unit, kernel (real BPF on a scratch cgroup)
# and end-to-end (pods in network namespaces, the real agent). Ends with ctest's summary.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)"
cd build
ctest --output-on-failure --no-label-summary --timeout 300 "$@"
