"""`onboard bench train`: every variant is built and stepped, and the report says what it measured (speed itself is
the benchmark's business, not the test's)."""

import json

import pytest

from tests.conftest import require

require("torch", "train")


def test_bench_train_times_every_variant(tmp_path, capsys):
    from onboard.bench.train import VARIANTS
    from onboard.cli import main

    out = tmp_path / "train.json"
    argv = ["bench", "train", "--batch_size", "2", "--steps", "2", "--warmup", "1", "--threads", "1"]
    assert main([*argv, "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "onboard bench train --batch_size 2 --steps 2 --warmup 1 --threads 1" in text
    report = json.loads(out.read_text())
    assert list(report["variants"]) == list(VARIANTS)
    for name, row in report["variants"].items():
        assert name in text
        assert row["ms_per_step"] > 0 and row["samples_per_s"] > 0
    params = {name: row["parameters_m"] for name, row in report["variants"].items()}
    # the recipe's model leaves out the first stage's residual conv: fewer parameters than the bundled config
    first = params["dropout 0, plain_stages 1, float32 (1st run)"]
    assert first < params["bundled config, float32"]
    assert params["+ conv_channels 16 32 64 128"] < first  # the narrower conv net
    second = params["+ subgoal_weight 1 (2nd run)"]
    assert second > params["+ conv_channels 16 32 64 128"]  # the subgoal query and head
    assert params["2nd run, channels_last"] == second  # the same model, another memory layout
    assert params["+ image_size 64 (r4: fails closed-loop)"] < second  # 4x4, not 6x6 position embeddings
    assert report["variants"]["bundled config, bf16 autocast (earlier recipe)"]["speedup"] == 1.0
    assert main(["bench", "train", "--steps", "0"]) == 2


@pytest.mark.slow
def test_bench_train_compile_times_the_recipe_under_torch_compile(tmp_path, capsys):
    import shutil

    from onboard.bench.train import COMPILED
    from onboard.cli import main

    if shutil.which("g++") is None and shutil.which("c++") is None:
        pytest.skip("torch.compile on the CPU needs a C++ compiler")
    out = tmp_path / "train.json"
    argv = ["bench", "train", "--batch_size", "2", "--steps", "1", "--warmup", "0", "--threads", "1", "--compile"]
    assert main([*argv, "--json", str(out)]) == 0
    (name,) = COMPILED
    row = json.loads(out.read_text())["variants"][name]
    assert row["ms_per_step"] > 0 and row["first_step_s"] > 0  # the compile is reported apart from the steps
    assert "(compiling)" in capsys.readouterr().out
