"""Hindsight subgoals for the VLA's auxiliary loss (policies.data.subgoal_rows): the next gripper crossing, else the
episode's end, computed from the recorded actions alone (so any LeRobot dataset with a named gripper has them)."""

import numpy as np

from policies.data import gripper_column, subgoal_rows


def test_gripper_column_by_name():
    names = ["shoulder_pan.pos", "shoulder_lift.pos", "elbow_flex.pos", "wrist_flex.pos", "wrist_roll.pos"]
    assert gripper_column([*names, "gripper.pos"]) == 5
    assert gripper_column(names) is None
    assert gripper_column(None) is None


def test_subgoals_are_the_next_grasp_or_release_then_the_episode_end():
    # episode 0 (rows 0-9): open (40), closes at row 4 (a grasp), stays closed; episode 1 (rows 10-17): opens at
    # row 10's seam (not a crossing), closes at 13, opens at 15 (a release)
    grip = np.array([40, 40, 40, 40, 0, 16, 16, 16, 16, 16, 40, 40, 40, 0, 16, 40, 40, 40], dtype=float)
    starts, ends = np.array([0, 10]), np.array([10, 18])
    rows = subgoal_rows(grip, starts, ends)
    assert rows.tolist() == [4, 4, 4, 4, 9, 9, 9, 9, 9, 9, 13, 13, 13, 15, 15, 17, 17, 17]


def test_without_a_gripper_every_subgoal_is_the_episode_end():
    starts, ends = np.array([0, 3]), np.array([3, 7])
    assert subgoal_rows(None, starts, ends).tolist() == [2, 2, 2, 6, 6, 6, 6]
    still = np.full(7, 20.0)  # a gripper that never moves has no crossing
    assert subgoal_rows(still, starts, ends).tolist() == [2, 2, 2, 6, 6, 6, 6]
