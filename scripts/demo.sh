#!/usr/bin/env bash
# Sets up a runtime environment (.venv, no torch needed) and runs the simulated demo. Arguments go to `onboard demo`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
.venv/bin/onboard demo "$@"
