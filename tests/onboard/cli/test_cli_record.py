"""`onboard teleoperate / record / replay` on the simulated rig, as a person runs them (headless)."""

from onboard.cli import main


def calibrate(tmp_path):
    assert (
        main(
            [
                "calibrate",
                "--robot.type=so101_follower",
                "--robot.port=sim",
                "--robot.id=f",
                f"--robot.calibration_dir={tmp_path}",
            ]
        )
        == 0
    )
    assert (
        main(
            [
                "calibrate",
                "--teleop.type=so101_leader",
                "--teleop.port=sim",
                "--teleop.id=l",
                f"--teleop.calibration_dir={tmp_path}",
            ]
        )
        == 0
    )
    return [
        "--robot.port=sim",
        "--robot.id=f",
        f"--robot.calibration_dir={tmp_path}",
        "--teleop.port=sim",
        "--teleop.id=l",
        f"--teleop.calibration_dir={tmp_path}",
    ]


def test_teleoperate_record_with_live_view_then_replay(tmp_path, capsys):
    arms = calibrate(tmp_path)
    capsys.readouterr()
    assert main(["teleoperate", *arms, "--teleop_time_s", "1", "--display_data"]) == 0
    captured = capsys.readouterr()
    assert "live view: http://127.0.0.1:" in captured.err
    assert "ticks at" in captured.out and " 0 overruns" in captured.out

    root = tmp_path / "ds"
    args = ["record", *arms, f"--dataset.root={root}", "--dataset.num_episodes=2", "--dataset.episode_time_s=2"]
    assert main([*args, "--dataset.reset_time_s=0.5", "--display_data"]) == 0
    captured = capsys.readouterr()
    assert "episode 1/2" in captured.err and "episode 2/2" in captured.err
    assert "saved 2 episode(s) (120 frames)" in captured.out
    assert main(["dataset", "verify", str(root)]) == 0

    replay = ["replay", "--robot.port=sim", "--robot.id=f", f"--robot.calibration_dir={tmp_path}"]
    assert main([*replay, f"--dataset.root={root}", "--dataset.episode=1"]) == 0
    out = capsys.readouterr().out
    worst = max(float(x) for x in out.split("max |state - recorded|:")[1].split(","))
    assert worst < 6.0  # degrees: the recorded follower states are reproduced


def test_robot_cameras_flag_uses_lerobots_syntax():
    import pytest

    from onboard.cli.rigs import parse_cameras
    from robot.errors import RobotError

    cams = parse_cameras(
        "{front: {type: opencv, index_or_path: 0, width: 640, height: 480, fps: 30}, top: {index_or_path: /dev/video2}}"
    )
    assert set(cams) == {"front", "top"}
    assert cams["front"].config.width == 640 and cams["front"].config.fps == 30
    assert cams["top"].config.index_or_path == "/dev/video2"
    assert parse_cameras('{"side": {"index_or_path": 1}}')["side"].config.index_or_path == 1
    assert parse_cameras(None) == {}
    with pytest.raises(RobotError, match="not supported"):
        parse_cameras("{front: {type: intelrealsense, serial_number_or_name: x}}")
    with pytest.raises(RobotError, match="map camera names"):
        parse_cameras("[1, 2]")
