#!/usr/bin/env bash
# Reproduces the bundled model (policies/bundled/so101_vla): demonstrations from the scripted expert through
# `onboard record` (headless, sim clock), `onboard train` on the CPU, `onboard export`, then `onboard eval`.
#
#   scripts/make_model.sh [WORK_DIR] [STAGE...]      stages: data train export eval install (default: data train
#                                                    export eval; install copies the bundle to policies/bundled/)
#
# WORK_DIR defaults to outputs/model. Each stage can be rerun alone; `train` resumes a killed run.
# Knobs (environment): TOUCH_EPS PICK_EPS PLACE_EPS (episodes per task), STEPS, BATCH, EVAL_N, NUM_ENVS.
set -euo pipefail
cd "$(dirname "$0")/.."
WORK=${1:-outputs/model}
shift || true
STAGES=${*:-data train export eval}
TOUCH_EPS=${TOUCH_EPS:-150}
PICK_EPS=${PICK_EPS:-200}
PLACE_EPS=${PLACE_EPS:-200}
STEPS=${STEPS:-18000}
BATCH=${BATCH:-32}
EVAL_N=${EVAL_N:-50}
NUM_ENVS=${NUM_ENVS:-2}
[ -d .venv ] || scripts/setup.sh dev
# shellcheck disable=SC1091
source .venv/bin/activate
export MUJOCO_GL=${MUJOCO_GL:-egl} HF_HUB_OFFLINE=1
mkdir -p "$WORK"

record() {  # task episodes seconds seed
  local ds="$WORK/data/$1"
  local resume=()
  [ -d "$ds/meta" ] && resume=(--resume)
  onboard record --robot.port=sim --robot.id=follower --robot.calibration_dir="$WORK/cal" \
    --teleop.port=sim --teleop.id=leader --teleop.calibration_dir="$WORK/cal" \
    --dataset.root="$ds" --dataset.repo_id="onboard/sim_$1" --dataset.num_episodes="$2" \
    --dataset.episode_time_s="$3" --dataset.reset_time_s=0 --sim.task="$1" --sim.seed="$4" "${resume[@]}" \
    >"$WORK/record_$1.log" 2>&1
  onboard dataset verify "$ds"
}

for stage in $STAGES; do
  case $stage in
  data)
    [ -f "$WORK/cal/robots/so101_follower/follower.json" ] || \
      onboard calibrate --robot.type=so101_follower --robot.port=sim --robot.id=follower \
        --robot.calibration_dir="$WORK/cal"
    [ -f "$WORK/cal/teleoperators/so101_leader/leader.json" ] || \
      onboard calibrate --teleop.type=so101_leader --teleop.port=sim --teleop.id=leader \
        --teleop.calibration_dir="$WORK/cal"
    # two recorders in parallel (2 cores): touch then pick, and place; seeds differ so layouts do
    (record touch "$TOUCH_EPS" 4 101 && record pick "$PICK_EPS" 7 102) &
    record place "$PLACE_EPS" 10 103
    wait %1
    ;;
  train)
    resume=()
    [ -d "$WORK/run/last" ] && resume=(--resume)
    onboard train --dataset.root="$WORK/data/touch" --dataset.root="$WORK/data/pick" \
      --dataset.root="$WORK/data/place" --output_dir="$WORK/run" --steps "$STEPS" --batch_size "$BATCH" --amp bf16 \
      "${resume[@]}" 2>&1 | tee -a "$WORK/train.log"
    ;;
  export)
    onboard export --checkpoint "$WORK/run/last" --output_dir "$WORK/bundle"
    ;;
  install)  # replace the bundled model (the model card, policies/bundled/so101_vla/README.md, is kept)
    dest=policies/bundled/so101_vla
    mkdir -p "$dest/text"
    cp "$WORK/bundle/bundle.json" "$WORK/bundle/vla.onnx" "$dest/"
    cp "$WORK/bundle/text/"* "$dest/text/"
    du -sh "$dest"
    ;;
  eval)
    # the acceptance suite on the exported bundle, unseen layout seeds (from 100000); one folder per run, then a table
    ev() {  # name, then onboard eval flags
      local name=$1
      shift
      [ -f "$WORK/eval/$name/report.json" ] && return 0
      onboard eval --policy.path "$WORK/bundle" --n "$EVAL_N" --num_envs "$NUM_ENVS" --videos 2 \
        --output_dir "$WORK/eval/$name" "$@" >"$WORK/eval_$name.log" 2>&1
      tail -n 3 "$WORK/eval_$name.log"
    }
    mkdir -p "$WORK/eval"
    for c in red green blue; do
      ev "touch_$c" --task touch --color "$c" --instruction "touch the $c cube"
      ev "pick_$c" --task pick --color "$c" --instruction "pick up the $c cube"
      ev "place_$c" --task place --color "$c" --instruction "put the $c cube in the box"
    done
    for t in touch pick place; do  # phrasings that no demonstration used (Task.held_out_templates)
      ev "reworded_$t" --task "$t" --split held_out
    done
    # latency: the same seeds as pick_red at 200 ms emulated inference latency, async and the synchronous baseline
    ev pick_red_async_200ms --task pick --color red --instruction "pick up the red cube" --latency 200ms
    ev pick_red_sync_200ms --task pick --color red --instruction "pick up the red cube" --latency 200ms --runner sync
    python -m sim.eval_report "$WORK/eval"
    ;;
  *)
    echo "unknown stage $stage (data, train, export, eval, install)" >&2
    exit 2
    ;;
  esac
done
