"""`onboard train --ema_decay`: the moving average of the weights (policies/ema.py) is what a checkpoint's policy holds,
the weights being trained ride in its training state, and `--resume` picks both up."""

from dataclasses import replace

import pytest
import torch
from safetensors.torch import load_file

from policies.checkpoints import TRAINED_WEIGHTS
from policies.ema import WeightAverage
from policies.train import TrainConfig, train
from tests.policies.test_train import SMALL, make_dataset


def test_the_average_follows_the_weights_with_a_ramped_decay():
    model = torch.nn.Linear(3, 2)
    average = WeightAverage(model, decay=0.5)
    expected = model.weight.detach().clone()
    for k, value in enumerate([1.0, -2.0, 4.0, 0.5]):
        with torch.no_grad():
            model.weight.fill_(value)
        rate = 1 - min(0.5, (1 + k) / (10 + k))  # the first updates follow the weights closely (0.9, 0.82, ...)
        assert average.rate() == pytest.approx(rate)
        average.update(model)
        expected = expected + rate * (value - expected)
        assert torch.allclose(average.module.weight, expected)
    assert not average.module.weight.requires_grad
    assert average.module.weight.data_ptr() != model.weight.data_ptr()  # a copy, not the trained weights
    for bad in (0.0, 1.0, -0.1):
        with pytest.raises(ValueError, match="decay"):
            WeightAverage(model, decay=bad)


def test_bad_ema_decay_is_refused_with_the_flag(tmp_path):
    with pytest.raises(ValueError, match="--ema_decay"):
        TrainConfig(datasets=(str(tmp_path),), ema_decay=1.0)


def _weights(folder):
    return load_file(str(folder))


def test_the_checkpoint_holds_the_average_and_resume_continues_the_trained_weights(tmp_path):
    data = make_dataset(tmp_path / "ds")
    out = tmp_path / "run"
    cfg = TrainConfig(
        datasets=(str(data),),
        output_dir=str(out),
        steps=3,
        batch_size=4,
        save_freq=3,
        warmup_steps=1,
        lr=1e-2,
        ema_decay=0.9,
        model=SMALL,
    )
    logs: list[str] = []
    train(cfg, log=logs.append, progress=False)
    assert any("weight average: decay 0.9" in line for line in logs)
    ckpt = out / "checkpoints" / "last"
    avg3 = _weights(ckpt / "pretrained_model" / "model.safetensors")
    trained3 = _weights(ckpt / "training_state" / TRAINED_WEIGHTS)
    assert avg3.keys() == trained3.keys()
    assert max(float((avg3[k] - trained3[k]).abs().max()) for k in avg3) > 1e-4  # the average lags the weights

    # one more step at a learning rate too small to move anything: the trained weights must be the step-3 ones (not
    # the average reloaded as if it were them), and the average moves one update towards them
    train(replace(cfg, steps=4, lr=1e-12), resume=True, log=logs.append, progress=False)
    avg4 = _weights(ckpt / "pretrained_model" / "model.safetensors")
    trained4 = _weights(ckpt / "training_state" / TRAINED_WEIGHTS)
    rate = 1 - 4 / 13  # the fourth update (three before it)
    for k in avg3:
        assert torch.allclose(trained4[k], trained3[k], atol=1e-6), k
        assert torch.allclose(avg4[k], avg3[k] + rate * (trained3[k] - avg3[k]), atol=1e-5), k
