#!/usr/bin/env bash
# Sets up a runtime environment (.venv with the simulation extra, no torch) and runs the simulated demo. Arguments go to `onboard demo`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh sim
.venv/bin/onboard demo "$@"
