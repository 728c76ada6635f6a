"""How well the jaws are turned to the cube when a policy starts its grasp, and where the cube is, against pick success.

    python scripts/pick_roll.py --policy.path policies/bundled/so101_vla --color red --n 40 --seed0 50000

Runs "pick up the <color> cube" episodes as `onboard eval` does (async runner, 0 ms latency, SafeArm on) and, at the
first tick the tool point is less than 3 cm above the cube's centre and within 4 cm of it sideways, measures the angle
between the jaws' closing direction and the nearest cube face normal (0-45 degrees, the cube is 4-fold symmetric).
Also the cube's distance from the pan axis at the start. Prints one line per episode (seed, success, distance, angle,
sideways offset in mm, time) and tables of success by angle and by distance: the numbers behind the model card's
"Limits and next steps" (policies/bundled/so101_vla/README.md).
"""

from __future__ import annotations

import argparse
import dataclasses
import math

from onboard.eval.episodes import run_episode_with_runner
from onboard.eval.factories import make_runner, policy_and_size
from sim import tasks as T
from sim.envs.env import SO101Env
from sim.expert import cube_face_yaw
from sim.expert.harness import spec_for_seed
from sim.twin.world import GRIPPER_SITE

BINS = ((0, 10), (10, 20), (20, 30), (30, 45.01))
RADII = ((0.0, 0.18), (0.18, 0.22), (0.22, 0.26), (0.26, 1.0))  # m from the pan axis


def pan_distance(env: SO101Env, color: str) -> float:
    """Horizontal distance (m) of the cube from the shoulder_pan axis."""
    pos, _ = T.cube_pose(env.world.model, env.world.data, color)
    return math.hypot(pos[0] - T.PAN_AXIS_XY[0], pos[1] - T.PAN_AXIS_XY[1])


def episode(env: SO101Env, policy, spec: T.TaskSpec) -> tuple[bool, float, float | None, float | None, float | None]:
    """(success, cube distance m, angle deg, sideways offset mm, time s) of one episode, run as `onboard eval` runs
    it; angle None when the tool never got there."""
    seen: dict[str, float] = {}

    def look(tick: int) -> None:
        if tick == 0:  # before the first action: the cube is where the seed laid it out
            seen["radius"] = pan_distance(env, spec.color)
        if "angle" in seen:
            return
        m, d = env.world.model, env.world.data
        pos, quat = T.cube_pose(m, d, spec.color)
        site = d.site(GRIPPER_SITE)
        rel = site.xpos - pos
        if rel[2] < 0.03 and math.hypot(rel[0], rel[1]) < 0.04:
            closing = site.xmat.reshape(3, 3)[:, 2]  # the site's z axis: from the fixed to the moving jaw
            a = math.degrees(math.atan2(closing[1], closing[0]) - cube_face_yaw(quat))
            seen.update(angle=abs((a + 45) % 90 - 45), offset=1000 * math.hypot(rel[0], rel[1]), t=tick / env.fps)

    result = run_episode_with_runner(env, policy, "async", 0.0, spec, make_runner=make_runner, on_tick=look)
    return result.success, seen["radius"], seen.get("angle"), seen.get("offset"), seen.get("t")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--policy.path", dest="policy_path", default="policies/bundled/so101_vla")
    p.add_argument("--policy.type", dest="policy_type", default="onnx", choices=["onnx", "vla"])
    p.add_argument("--color", default="red", choices=list(T.COLORS))
    p.add_argument("--n", type=int, default=40)
    p.add_argument("--seed0", type=int, default=50_000)
    args = p.parse_args()
    policy, size = policy_and_size(args.policy_type, args.policy_path)
    env = SO101Env(task="pick", image_size=(size, size), safety=True)
    rows = []
    try:
        for seed in range(args.seed0, args.seed0 + args.n):
            spec = spec_for_seed("pick", seed, colors=(args.color,))
            spec = dataclasses.replace(spec, instruction=f"pick up the {args.color} cube")
            ok, radius, angle, offset, t = episode(env, policy, spec)
            rows.append((ok, radius, angle))
            shown = "-" if angle is None else f"{angle:5.1f} deg, {offset:4.0f} mm, {t:.2f} s"
            print(f"{seed} {'success' if ok else 'fail   '} {100 * radius:4.1f} cm, {shown}", flush=True)
    finally:
        env.close()
    for lo, hi in BINS:
        hits = [ok for ok, _, a in rows if a is not None and lo <= a < hi]
        print(f"angle {lo:2.0f}-{min(hi, 45):2.0f} deg: {sum(hits)}/{len(hits)} succeeded")
    for lo, hi in RADII:
        hits = [ok for ok, r, _ in rows if lo <= r < hi]
        print(f"cube {100 * lo:2.0f}-{100 * hi:3.0f} cm from the pan axis: {sum(hits)}/{len(hits)} succeeded")
    never = [ok for ok, _, a in rows if a is None]
    if never:
        print(f"never within 3 cm above the cube: {sum(never)}/{len(never)} succeeded")


if __name__ == "__main__":
    main()
