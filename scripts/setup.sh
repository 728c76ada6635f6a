#!/usr/bin/env bash
# Creates ./.venv (if missing) and installs onboard into it with the given extras, e.g. `scripts/setup.sh dev`.
# Idempotent: a second run only installs what changed. Needs Python >= 3.11 and the package registries.
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-}"
py="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
    echo "[setup] creating .venv with $($py --version)"
    "$py" -m venv .venv
fi
# Offscreen rendering of the simulated cameras needs EGL + Mesa (reference/measured-here.md); install if missing.
if [[ "$extras" == *dev* || "$extras" == *sim* ]] && ! ldconfig -p | grep -q "libEGL.so.1"; then
    if [ "$(id -u)" = 0 ]; then
        echo "[setup] installing EGL/Mesa for offscreen rendering (apt-get)"
        apt-get update -qq && apt-get install -y -qq --no-install-recommends libegl1 libopengl0 libgl1-mesa-dri >/dev/null
    else
        echo "[setup] warning: libEGL missing; run: sudo apt-get install libegl1 libopengl0 libgl1-mesa-dri" >&2
    fi
fi
# The live view's browser test (tests/robot/test_liveview_browser.py) opens the page in headless Chromium (Debian's).
if [[ "$extras" == *dev* ]] && ! command -v chromium >/dev/null; then
    if [ "$(id -u)" = 0 ]; then
        echo "[setup] installing chromium for the live view's browser test (apt-get)"
        apt-get update -qq && apt-get install -y -qq --no-install-recommends chromium >/dev/null
    else
        echo "[setup] warning: chromium missing (the live view's browser test skips); run: sudo apt-get install chromium" >&2
    fi
fi
# LeRobot's default video backend (torchcodec) loads the system's FFmpeg shared libraries (4-8: libavutil 56-60);
# without them every video read of `lerobot-train` / `lerobot-dataset-viz` fails. Debian's ffmpeg brings them.
# (grep without -q reads all of ldconfig's list: -q would quit early and, under pipefail, fail the pipe)
if [[ "$extras" == *dev* ]] && ! ldconfig -p | grep -E "libavutil\.so\.(56|57|58|59|60) " >/dev/null; then
    if [ "$(id -u)" = 0 ]; then
        echo "[setup] installing FFmpeg's libraries for LeRobot's video decoder, torchcodec (apt-get)"
        apt-get update -qq && apt-get install -y -qq --no-install-recommends ffmpeg >/dev/null
    else
        echo "[setup] warning: FFmpeg's libraries missing (LeRobot's torchcodec cannot decode); run: sudo apt-get install ffmpeg" >&2
    fi
fi
spec="."
[ -n "$extras" ] && spec=".[$extras]"
# What the chosen extras bring, so the message matches what is installed (`demo` and `onnx` are torch-free).
case ",$extras," in
    *,dev,* | *,interop,* | *,train,*) brings="torch comes with them" ;;
    *) brings="no torch: onnxruntime runs the bundled model" ;;
esac
echo "[setup] installing onboard${extras:+[$extras]} into .venv (first run downloads dependencies; $brings)"
# pip prints one harmless warning per package about this machine's local index folders; keep the rest.
.venv/bin/python -m pip install -q --disable-pip-version-check -e "$spec" 2>&1 | { grep -v "^WARNING: Location 'file:" || true; }
test "${PIPESTATUS[0]}" -eq 0
# The LeRobot plugins of this repository (plugins/): our VLA as `lerobot-train --policy.type=onboard`, the served
# twin's cameras as `--robot.cameras="{front: {type: onboard_sim, name: front}}"`. Dev only: they need torch + LeRobot.
if [[ "$extras" == *dev* ]]; then
    echo "[setup] installing the LeRobot plugins (plugins/lerobot_policy_onboard, plugins/lerobot_camera_onboard)"
    .venv/bin/python -m pip install -q --disable-pip-version-check \
        -e plugins/lerobot_policy_onboard -e plugins/lerobot_camera_onboard 2>&1 | { grep -v "^WARNING: Location 'file:" || true; }
    test "${PIPESTATUS[0]}" -eq 0
fi
