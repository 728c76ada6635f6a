"""Which backend a policy folder gets: our VLA checkpoints also carry a config.json with a "type", and must not be
taken for LeRobot checkpoints (`onboard eval` / `onboard run` pick the backend from the folder)."""

import json

from policies.lerobot_policy import is_lerobot_checkpoint
from robot.policy_loader import detect_policy_type, policy_kind


def _folder(tmp_path, name, files):
    d = tmp_path / name
    d.mkdir()
    for fname, content in files.items():
        (d / fname).write_text(json.dumps(content))
    return d


def test_policy_folders_are_told_apart(tmp_path):
    vla = _folder(tmp_path, "vla", {"config.json": {"type": "onboard_vla", "config": {}}})
    act = _folder(tmp_path, "act", {"config.json": {"type": "act", "chunk_size": 10}})
    files = {"bundle.json": {"format": "onboard-vla-onnx/1"}, "config.json": {"type": "x"}}
    bundle = _folder(tmp_path, "bundle", files)
    assert not is_lerobot_checkpoint(vla) and is_lerobot_checkpoint(act) and not is_lerobot_checkpoint(bundle)
    assert [policy_kind(p) for p in (vla, act, bundle)] == ["vla", "lerobot", "onnx"]
    assert [detect_policy_type(str(p)) for p in (vla, act, bundle)] == ["vla", "lerobot", "onnx"]  # onboard eval
