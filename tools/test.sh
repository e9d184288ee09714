#!/usr/bin/env bash
# Installs, builds and runs every test (ctest); the last line counts passed
# and failed tests.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/setup.sh
cd build
ctest --output-on-failure -j1 --timeout 600 "$@"
