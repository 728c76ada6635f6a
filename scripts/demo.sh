#!/usr/bin/env bash
# Sets up a runtime environment (.venv with the `demo` extra: MuJoCo + onnxruntime, no torch) and runs the simulated
# demo: the servo bus, then the bundled model (policies/bundled/so101_vla) on an instruction. Arguments go to
# `onboard demo`, e.g. `scripts/demo.sh "put the green cube in the box"` or `scripts/demo.sh --policy-only`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh demo
.venv/bin/onboard demo "$@"
