"""A bundle says how it was made: `onboard export` copies the run's train_config.json (and the step) into
bundle.json."""

import json

from policies.bundle import _training_config


def test_training_config_is_found_for_a_step_folder_and_for_last(tmp_path):
    run = tmp_path / "run"
    (run / "checkpoints" / "3000").mkdir(parents=True)
    (run / "last").mkdir()
    (run / "train_config.json").write_text(json.dumps({"steps": 12000, "datasets": ["d/touch"]}))
    assert _training_config(run / "checkpoints" / "3000") == {"steps": 12000, "datasets": ["d/touch"]}
    assert _training_config(run / "last")["steps"] == 12000
    assert _training_config(tmp_path / "elsewhere" / "ckpt") is None
