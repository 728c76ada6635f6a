#!/usr/bin/env bash
# Reproduces the bundled model (policies/bundled/so101_vla): demonstrations from the scripted expert through
# `onboard record` (headless, sim clock), `onboard train` on the CPU, `onboard export`, then `onboard eval`.
#
#   scripts/make_model.sh [WORK_DIR] [STAGE...]      stages: data train export eval install (default: data train
#                                                    export eval; install copies the bundle to policies/bundled/)
#
# WORK_DIR defaults to outputs/model. Each stage can be rerun alone; `train` resumes a killed run.
# The bundled model took five runs of this script (fine-tunes via INIT_FROM as the expert changed, the last with
# PARAPHRASE=1): the model card, policies/bundled/so101_vla/README.md, has those commands, and what one from-scratch
# run of 20,000 steps measures.
# Knobs (environment): TOUCH_EPS PICK_EPS PLACE_EPS (clean episodes per task), DTOUCH_EPS DPICK_EPS DPLACE_EPS
# (episodes per task with the follower pushed off the leader's goals, --sim.disturbance DISTURBANCE degrees: they show
# recovery), NPICK_EPS NPLACE_EPS (default 0: pick and place episodes pushed with NEAR_DISTURBANCE degrees down to
# NEAR_FLOOR m above the table, --sim.disturbance_floor, recovery in the last centimetres above a cube; the bundle
# does not use them, see its model card), TOUCH_S PICK_S PLACE_S (seconds recorded per episode: the expert's
# slowest episodes with ~1 s to spare), STEPS, BATCH, LR, SHIFT, STATE_NOISE and PARAPHRASE (training augmentation;
# PARAPHRASE=1 trains each demonstration under all training phrasings of its task and colour), INIT_FROM
# (a checkpoint to fine-tune from instead of starting from scratch), EVAL_N, NUM_ENVS.
set -euo pipefail
cd "$(dirname "$0")/.."
WORK=${1:-outputs/model}
shift || true
STAGES=${*:-data train export eval}
TOUCH_EPS=${TOUCH_EPS:-150}
PICK_EPS=${PICK_EPS:-200}
PLACE_EPS=${PLACE_EPS:-200}
DTOUCH_EPS=${DTOUCH_EPS:-100}
DPICK_EPS=${DPICK_EPS:-250}
DPLACE_EPS=${DPLACE_EPS:-200}
DISTURBANCE=${DISTURBANCE:-1.0}
NPICK_EPS=${NPICK_EPS:-0}
NPLACE_EPS=${NPLACE_EPS:-0}
NEAR_DISTURBANCE=${NEAR_DISTURBANCE:-1.5}
NEAR_FLOOR=${NEAR_FLOOR:-0.015}
TOUCH_S=${TOUCH_S:-4}
PICK_S=${PICK_S:-8}
PLACE_S=${PLACE_S:-12}
SHIFT=${SHIFT:-4}
STATE_NOISE=${STATE_NOISE:-1.0}
PARAPHRASE=${PARAPHRASE:-0}
LR=${LR:-3e-4}
INIT_FROM=${INIT_FROM:-}
STEPS=${STEPS:-18000}
BATCH=${BATCH:-32}
EVAL_N=${EVAL_N:-50}
NUM_ENVS=${NUM_ENVS:-2}
[ -d .venv ] || scripts/setup.sh dev
# shellcheck disable=SC1091
source .venv/bin/activate
export MUJOCO_GL=${MUJOCO_GL:-egl} HF_HUB_OFFLINE=1
mkdir -p "$WORK"

episodes_in() {  # dataset folder: its committed episodes (0 when there is none yet)
  [ -f "$1/meta/info.json" ] || { echo 0; return; }
  python -c 'import json,sys; print(json.load(open(sys.argv[1]))["total_episodes"])' "$1/meta/info.json"
}

record() {  # dataset task episodes seconds seed [disturbance [floor]]: records what the dataset still lacks
  [ "$3" -gt 0 ] || return 0
  local ds="$WORK/data/$1" have
  local resume=()
  have=$(episodes_in "$ds")
  [ -f "$ds/meta/info.json" ] && resume=(--resume)
  local tries=0
  # A fault (a pushed arm stalled against the tray, say) ends a recording: --resume repairs the dataset and records the
  # rest, from another layout seed (the same one would replay the same fault)
  while [ "$have" -lt "$3" ]; do
    [ "$tries" -lt 5 ] || { echo "record $1: giving up after $tries tries (see $WORK/record_$1.log)" >&2; return 1; }
    tries=$((tries + 1))
    onboard record --robot.port=sim --robot.id=follower --robot.calibration_dir="$WORK/cal" \
      --teleop.port=sim --teleop.id=leader --teleop.calibration_dir="$WORK/cal" \
      --dataset.root="$ds" --dataset.repo_id="onboard/sim_$1" --dataset.num_episodes="$(($3 - have))" \
      --dataset.episode_time_s="$4" --dataset.reset_time_s=0 --sim.task="$2" --sim.seed="$(($5 + 1000 * (tries - 1)))" \
      --sim.disturbance="${6:-0}" ${7:+--sim.disturbance_floor="$7"} "${resume[@]}" >>"$WORK/record_$1.log" 2>&1 ||
      true
    resume=(--resume)
    have=$(episodes_in "$ds")
  done
  onboard dataset verify "$ds"
}

for stage in $STAGES; do
  case $stage in
  data)
    [ -f "$WORK/cal/follower.json" ] || \
      onboard calibrate --robot.type=so101_follower --robot.port=sim --robot.id=follower \
        --robot.calibration_dir="$WORK/cal"
    [ -f "$WORK/cal/leader.json" ] || \
      onboard calibrate --teleop.type=so101_leader --teleop.port=sim --teleop.id=leader \
        --teleop.calibration_dir="$WORK/cal"
    # two recorders in parallel (2 cores, ~the same simulated time each); seeds differ so layouts do. Clean
    # demonstrations, and pushed ones (the follower pushed off the leader's goals: they show the way back)
    (record touch touch "$TOUCH_EPS" "$TOUCH_S" 101 && record pick pick "$PICK_EPS" "$PICK_S" 102 &&
      record touch_pushed touch "$DTOUCH_EPS" "$TOUCH_S" 201 "$DISTURBANCE" &&
      record pick_pushed pick "$DPICK_EPS" "$PICK_S" 202 "$DISTURBANCE" &&
      record pick_near pick "$NPICK_EPS" "$PICK_S" 302 "$NEAR_DISTURBANCE" "$NEAR_FLOOR") &
    record place place "$PLACE_EPS" "$PLACE_S" 103 && record place_pushed place "$DPLACE_EPS" "$PLACE_S" 203 "$DISTURBANCE" &&
      record place_near place "$NPLACE_EPS" "$PLACE_S" 303 "$NEAR_DISTURBANCE" "$NEAR_FLOOR"
    wait %1
    ;;
  train)
    resume=()
    [ -e "$WORK/run/checkpoints/last" ] && resume=(--resume)
    roots=()
    for ds in touch pick place touch_pushed pick_pushed place_pushed; do roots+=(--dataset.root="$WORK/data/$ds"); done
    for ds in pick_near place_near; do  # optional (NPICK_EPS, NPLACE_EPS)
      [ "$(episodes_in "$WORK/data/$ds")" -eq 0 ] || roots+=(--dataset.root="$WORK/data/$ds")
    done
    init=()
    [ -n "$INIT_FROM" ] && init=(--init_from "$INIT_FROM")
    paraphrase=()
    [ "$PARAPHRASE" = 1 ] && paraphrase=(--augment.paraphrase)
    onboard train "${roots[@]}" --output_dir="$WORK/run" --steps "$STEPS" --batch_size "$BATCH" --lr "$LR" --amp bf16 \
      --augment.shift "$SHIFT" --augment.state_noise "$STATE_NOISE" "${paraphrase[@]}" "${init[@]}" "${resume[@]}" 2>&1 |
      tee -a "$WORK/train.log"
    ;;
  export)
    onboard export --checkpoint "$WORK/run/checkpoints/last" --output_dir "$WORK/bundle"
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
    # the same seeds without SafeArm between the policy and the arm (every run above has it, as `onboard run` does)
    ev pick_red_no_safearm --task pick --color red --instruction "pick up the red cube" --safety off
    python -m onboard.eval.report "$WORK/eval"
    ;;
  *)
    echo "unknown stage $stage (data, train, export, eval, install)" >&2
    exit 2
    ;;
  esac
done
