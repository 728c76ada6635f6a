#!/usr/bin/env bash
# The recipe for the bundled model (policies/bundled/so101_vla) from scratch, from today's code, on a 2-core CPU (what
# each setting did, measured on validation seeds: the model card, "From scratch in an hour"; since 2026-12-08 the
# policy is the moving average of the weights, EMA; a run at 64x64 input, MODEL_FLAGS+=" --model.image_size 64",
# fitted its data but picked 1-4 of 50 on unseen layouts, so the input stays 96x96): the scripted
# expert's demonstrations (`onboard record` on the simulated rig, headless, sim clock), `onboard
# train`, `onboard export`, a DAgger round (`onboard dagger`: the exported policy drives, the expert takes over and its
# part is recorded; then training goes on from this run's checkpoint on all the data), export again, `onboard eval`.
#
#   scripts/make_model.sh [WORK_DIR] [STAGE...]   stages: data train export dagger retrain export eval (the default,
#                                                 in that order; ROUNDS=2 adds dagger2 retrain2 export before eval),
#                                                 eval_pick_place (pick and place per colour only) and install
#                                                 (copies the bundle to policies/bundled/)
#
# WORK_DIR defaults to outputs/model. Each stage can be rerun alone; `train` and `retrain` resume a killed run. Every
# stage's wall time goes to WORK_DIR/recipe.json with the settings below; `export` copies that file into bundle.json
# ("recipe"). The model card, policies/bundled/so101_vla/README.md, has what each setting did.
# Knobs (environment): TOUCH_EPS PICK_EPS PLACE_EPS (clean episodes per task), DTOUCH_EPS DPICK_EPS DPLACE_EPS
# (episodes per task with the follower pushed off the leader's goals, --sim.disturbance DISTURBANCE degrees: they show
# recovery), TOUCH_S PICK_S PLACE_S (seconds recorded per episode: the expert's slowest episodes with ~1 s to spare),
# STEPS, BATCH, LR, AMP, SHIFT, STATE_NOISE, PARAPHRASE (training: 1 trains each demonstration under all training
# phrasings of its task and colour, `composed` under those and sim/tasks/phrasings.py's rewordings, 0 under its own
# instruction only), MODEL_FLAGS (extra `onboard train` flags, e.g. --model.dropout 0),
# DAGGER_PICK DAGGER_PLACE (DAgger episodes per task; 0 records none, and `retrain` then trains on the demonstrations
# alone), DAGGER_STEPS DAGGER_LR (the training after each round), ROUNDS (DAgger rounds: stages dagger2 retrain2 ...
# follow), EMA (`--ema_decay`), SEED (`onboard train --seed`: the weights, the data order and the augmentation; the
# spread over training seeds), MAX_EPISODES (`--dataset.max_episodes`: only the first N episodes of every dataset of
# a training, for the data-efficiency table), DATA_FROM (another WORK_DIR whose demonstrations the `data` stage
# links instead of recording; their recording time is copied into recipe.json), EVAL_N, NUM_ENVS. INIT_FROM fine-tunes from another checkpoint instead of starting from scratch (not the
# recipe: for experiments).
set -euo pipefail
cd "$(dirname "$0")/.."
WORK=${1:-outputs/model}
shift || true
ROUNDS=${ROUNDS:-1}  # DAgger rounds: each records with the newest bundle, then trains on from the newest checkpoint
default_stages="data train export"
for ((k = 1; k <= ROUNDS; k++)); do
  if [ "$k" = 1 ]; then default_stages+=" dagger retrain export"; else default_stages+=" dagger$k retrain$k export"; fi
done
STAGES=${*:-$default_stages eval}
TOUCH_EPS=${TOUCH_EPS:-150}
PICK_EPS=${PICK_EPS:-200}
PLACE_EPS=${PLACE_EPS:-200}
DTOUCH_EPS=${DTOUCH_EPS:-100}
DPICK_EPS=${DPICK_EPS:-250}
DPLACE_EPS=${DPLACE_EPS:-200}
DISTURBANCE=${DISTURBANCE:-1.0}
TOUCH_S=${TOUCH_S:-4}
PICK_S=${PICK_S:-8}
PLACE_S=${PLACE_S:-12}
SHIFT=${SHIFT:-4}
STATE_NOISE=${STATE_NOISE:-1.0}
PARAPHRASE=${PARAPHRASE:-1}
LR=${LR:-1e-3}
AMP=${AMP:-auto}  # auto: bf16 autocast where the CPU has AMX (1.4-1.5x there), float32 elsewhere (bf16 is slower)
if [ "$AMP" = auto ]; then
  AMP=none
  grep -q amx_bf16 /proc/cpuinfo 2>/dev/null && AMP=bf16
fi
MODEL_FLAGS=${MODEL_FLAGS:---model.dropout 0 --model.plain_stages 1 --model.conv_channels 16 32 64 128 --model.subgoal_weight 1}
INIT_FROM=${INIT_FROM:-}
STEPS=${STEPS:-13500}
BATCH=${BATCH:-32}
DAGGER_PICK=${DAGGER_PICK:-80}
DAGGER_PLACE=${DAGGER_PLACE:-80}
DAGGER_STEPS=${DAGGER_STEPS:-6500}  # steps of each round's training
DAGGER_LR=${DAGGER_LR:-5e-4}
EMA=${EMA:-0.999}  # --ema_decay: a moving average of the weights is saved as the policy (0: off)
SEED=${SEED:-0}
DATA_FROM=${DATA_FROM:-}  # another WORK_DIR: its demonstrations are linked, not recorded again
MAX_EPISODES=${MAX_EPISODES:-}
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

note_stage() {  # stage seconds: adds the stage's wall time and the settings to $WORK/recipe.json
  python - "$WORK/recipe.json" "$1" "$2" <<'PY'
import json, os, subprocess, sys
path, stage, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
try:
    recipe = json.load(open(path))
except (OSError, ValueError):
    recipe = {"command": "scripts/make_model.sh", "stages": {}}
knobs = ("TOUCH_EPS PICK_EPS PLACE_EPS DTOUCH_EPS DPICK_EPS DPLACE_EPS DISTURBANCE TOUCH_S PICK_S PLACE_S SHIFT "
         "STATE_NOISE PARAPHRASE LR AMP MODEL_FLAGS INIT_FROM STEPS BATCH DAGGER_PICK DAGGER_PLACE DAGGER_STEPS "
         "DAGGER_LR EMA ROUNDS SEED MAX_EPISODES").split()
recipe["settings"] = {k: os.environ.get(k, "") for k in knobs}
try:
    recipe["commit"] = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
except OSError:
    pass
recipe["stages"][stage] = round(recipe["stages"].get(stage, 0.0) + seconds, 1)  # a rerun stage adds up
recipe["machine"] = {"cpus": os.cpu_count()}
tmp = path + ".tmp"
json.dump(recipe, open(tmp, "w"), indent=2)
os.replace(tmp, path)
PY
}
export TOUCH_EPS PICK_EPS PLACE_EPS DTOUCH_EPS DPICK_EPS DPLACE_EPS DISTURBANCE TOUCH_S PICK_S PLACE_S SHIFT \
  STATE_NOISE PARAPHRASE LR AMP MODEL_FLAGS INIT_FROM STEPS BATCH DAGGER_PICK DAGGER_PLACE DAGGER_STEPS DAGGER_LR EMA \
  ROUNDS SEED MAX_EPISODES

record() {  # dataset task episodes seconds seed [disturbance]: records what the dataset still lacks
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
      --sim.disturbance="${6:-0}" "${resume[@]}" >>"$WORK/record_$1.log" 2>&1 || true
    resume=(--resume)
    have=$(episodes_in "$ds")
  done
  onboard dataset verify "$ds"
}

train_run() {  # run folder, steps, lr, dataset names..., then optionally: -- init checkpoint
  local run=$1 steps=$2 lr=$3
  shift 3
  local roots=() init=() resume=() paraphrase=() subset=()
  while [ $# -gt 0 ] && [ "$1" != "--" ]; do
    [ "$(episodes_in "$WORK/data/$1")" -eq 0 ] || roots+=(--dataset.root="$WORK/data/$1")
    shift
  done
  [ "${1:-}" = "--" ] && init=(--init_from "$2")
  [ -e "$WORK/$run/checkpoints/last" ] && { resume=(--resume); init=(); }
  [ -n "$MAX_EPISODES" ] && subset=(--dataset.max_episodes "$MAX_EPISODES")
  case $PARAPHRASE in
  0) ;;
  1 | train) paraphrase=(--augment.paraphrase) ;;
  composed) paraphrase=(--augment.paraphrase --augment.phrasings composed) ;;
  *) echo "PARAPHRASE=$PARAPHRASE: 0, 1 (train) or composed" >&2; return 2 ;;
  esac
  # shellcheck disable=SC2086  # MODEL_FLAGS is a list of flags
  onboard train "${roots[@]}" --output_dir="$WORK/$run" --steps "$steps" --batch_size "$BATCH" --lr "$lr" \
    --amp "$AMP" --ema_decay "$EMA" --augment.shift "$SHIFT" --augment.state_noise "$STATE_NOISE" $MODEL_FLAGS \
    --seed "$SEED" "${paraphrase[@]}" "${subset[@]}" \
    "${init[@]}" "${resume[@]}" 2>&1 | tee -a "$WORK/$run.log"
}

DEMOS="touch pick place touch_pushed pick_pushed place_pushed"
dagger_set() {  # round task: the dataset of that DAgger round (round 1: dagger_pick, as before rounds; then dagger2_pick)
  if [ "$1" = 1 ]; then echo "dagger_$2"; else echo "dagger$1_$2"; fi
}
round_run() {  # round: the training run that ends it (0: the first training)
  case $1 in 0) echo run ;; 1) echo run_dagger ;; *) echo "run_dagger$1" ;; esac
}
newest_run() {  # the newest training run with a checkpoint
  local k=9
  while [ "$k" -gt 0 ] && [ ! -e "$WORK/$(round_run "$k")/checkpoints/last" ]; do k=$((k - 1)); done
  round_run "$k"
}
for stage in $STAGES; do
  t0=$(date +%s.%N)
  case $stage in
  data)
    if [ -n "$DATA_FROM" ]; then  # another run's demonstrations (the same data: the spread over training seeds)
      mkdir -p "$WORK/data"
      for ds in $DEMOS; do ln -sfn "$(realpath "$DATA_FROM/data/$ds")" "$WORK/data/$ds"; done
      ln -sfn "$(realpath "$DATA_FROM/cal")" "$WORK/cal"
      python - "$DATA_FROM/recipe.json" "$WORK/recipe.json" <<'PY'
import json, sys
src = json.load(open(sys.argv[1]))  # that run's data stage time is this run's too
try:
    dst = json.load(open(sys.argv[2]))
except (OSError, ValueError):
    dst = {"command": "scripts/make_model.sh", "stages": {}}
dst["stages"]["data"] = src["stages"]["data"]
dst["data_from"] = sys.argv[1].rsplit("/", 1)[0]
json.dump(dst, open(sys.argv[2], "w"), indent=2)
PY
      continue  # not timed: the data stage's time is the one it was recorded in
    fi
    [ -f "$WORK/cal/follower.json" ] || \
      onboard calibrate --robot.type=so101_follower --robot.port=sim --robot.id=follower \
        --robot.calibration_dir="$WORK/cal"
    [ -f "$WORK/cal/leader.json" ] || \
      onboard calibrate --teleop.type=so101_leader --teleop.port=sim --teleop.id=leader \
        --teleop.calibration_dir="$WORK/cal"
    # two recorders in parallel (2 cores), each ~the same wall time (place records at ~2.7x real time, touch and
    # pick at ~3.9x); seeds differ so layouts do. Clean demonstrations, and pushed ones (the follower pushed off the
    # leader's goals: they show the way back)
    (record touch touch "$TOUCH_EPS" "$TOUCH_S" 101 && record pick pick "$PICK_EPS" "$PICK_S" 102 &&
      record place_pushed place "$DPLACE_EPS" "$PLACE_S" 203 "$DISTURBANCE") &
    record place place "$PLACE_EPS" "$PLACE_S" 103 && record touch_pushed touch "$DTOUCH_EPS" "$TOUCH_S" 201 "$DISTURBANCE" &&
      record pick_pushed pick "$DPICK_EPS" "$PICK_S" 202 "$DISTURBANCE"
    wait %1
    ;;
  train)
    # shellcheck disable=SC2086
    train_run run "$STEPS" "$LR" $DEMOS ${INIT_FROM:+-- "$INIT_FROM"}
    ;;
  export)  # the newest run: after a DAgger round, its training
    run=$(newest_run)
    onboard export --checkpoint "$WORK/$run/checkpoints/last" --output_dir "$WORK/bundle" --recipe "$WORK/recipe.json"
    ;;
  dagger | dagger[0-9]*)  # the exported policy drives, the expert takes over at a random time and finishes
    k=${stage#dagger}  # (onboard/eval/dagger.py); round k's seeds: (2k-1) million on for pick, 2k million for place
    k=${k:-1}
    for t in pick place; do
      n=DAGGER_${t^^} ds=$(dagger_set "$k" "$t")
      [ "${!n}" -gt 0 ] && [ ! -f "$WORK/data/$ds/meta/info.json" ] || continue
      rm -rf "$WORK/data/$ds" "$WORK/data/$ds.shards"
      seed0=$(((2 * k - 1) * 1000000)) expert_s=$PICK_S
      [ "$t" = place ] && { seed0=$((2 * k * 1000000)); expert_s=$PLACE_S; }
      onboard dagger --policy.path "$WORK/bundle" --sim.task "$t" --n "${!n}" --seed0 "$seed0" \
        --expert_s "$expert_s" --num_workers 2 \
        --dataset.root "$WORK/data/$ds" >"$WORK/$ds.log" 2>&1
      tail -n 2 "$WORK/$ds.log"
    done
    ;;
  retrain | retrain[0-9]*)  # DAGGER_STEPS more steps on the demonstrations and every round's DAgger data so far,
    k=${stage#retrain}  # from the previous phase's checkpoint
    k=${k:-1}
    sets=()
    for ((j = 1; j <= k; j++)); do sets+=("$(dagger_set "$j" pick)" "$(dagger_set "$j" place)"); done
    # shellcheck disable=SC2086
    train_run "$(round_run "$k")" "$DAGGER_STEPS" "$DAGGER_LR" $DEMOS "${sets[@]}" \
      -- "$WORK/$(round_run $((k - 1)))/checkpoints/last"
    ;;
  install)  # replace the bundled model (the model card, policies/bundled/so101_vla/README.md, is kept)
    dest=policies/bundled/so101_vla
    mkdir -p "$dest/text"
    cp "$WORK/bundle/bundle.json" "$WORK/bundle/vla.onnx" "$dest/"
    cp "$WORK/bundle/text/"* "$dest/text/"
    du -sh "$dest"
    ;;
  eval | eval_pick_place)
    # the acceptance suite on the exported bundle, unseen layout seeds (from 100000); one folder per run, then a table
    # (eval_pick_place: pick and place per colour only, for the data-efficiency table)
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
      ev "pick_$c" --task pick --color "$c" --instruction "pick up the $c cube"
      ev "place_$c" --task place --color "$c" --instruction "put the $c cube in the box"
    done
    if [ "$stage" = eval ]; then
      for c in red green blue; do
        ev "touch_$c" --task touch --color "$c" --instruction "touch the $c cube"
      done
      for t in touch pick place; do  # phrasings that no demonstration used (Task.held_out_templates)
        ev "reworded_$t" --task "$t" --split held_out
      done
      # latency: pick_red's seeds at 200 ms emulated inference latency, async and the synchronous baseline
      ev pick_red_async_200ms --task pick --color red --instruction "pick up the red cube" --latency 200ms
      ev pick_red_sync_200ms --task pick --color red --instruction "pick up the red cube" --latency 200ms --runner sync
      # the same seeds without SafeArm between the policy and the arm (every run above has it, as `onboard run`)
      ev pick_red_no_safearm --task pick --color red --instruction "pick up the red cube" --safety off
    fi
    python -m onboard.eval.report "$WORK/eval"
    ;;
  *)
    echo "unknown stage $stage (data, train, export, dagger[N], retrain[N], eval, eval_pick_place, install)" >&2
    exit 2
    ;;
  esac
  note_stage "$stage" "$(python -c "import sys, time; print(time.time() - float(sys.argv[1]))" "$t0")"
done
