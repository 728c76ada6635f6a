#!/usr/bin/env bash
# Sets up the dev environment (.venv with every extra, LeRobot 0.4.4 and the Feetech SDK included) and runs the
# whole test suite plus the linter. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh dev
export ONBOARD_REQUIRE_INTEROP=1   # interop tests fail instead of skipping when LeRobot or the SDK is missing
export HF_HUB_OFFLINE=1
.venv/bin/ruff check .
.venv/bin/python -m pytest -q "$@"
