"""Training augmentation (policies/augment.py): random image shift and state noise, and `onboard train` using them."""

import json

import numpy as np
import pytest
import torch

from policies.augment import AugmentConfig, augment_batch, random_shift
from policies.train import TrainConfig, train

from .test_train import SMALL, make_dataset


def test_random_shift_moves_each_image_by_at_most_pad_pixels():
    B, H, W, pad = 64, 24, 24, 3
    img = torch.zeros((B, 3, H, W), dtype=torch.uint8)
    img[:, :, 12, 12] = 255  # one bright pixel in the middle of every image
    out = random_shift(img, pad, torch.Generator().manual_seed(0))
    assert out.shape == (B, 3, H, W) and out.dtype == torch.float32
    assert float(out.max()) == 1.0 and float(out.min()) == 0.0  # scaled to [0,1]
    shifts = set()
    for i in range(B):
        ys, xs = np.nonzero(out[i, 0].numpy())
        assert len(ys) == 1  # the pixel moved, it was not blurred or duplicated
        dy, dx = int(ys[0]) - 12, int(xs[0]) - 12
        assert abs(dy) <= pad and abs(dx) <= pad
        shifts.add((dy, dx))
    assert len(shifts) > 10  # different offsets per image, not one for the batch


def test_random_shift_repeats_edges_and_zero_pad_is_identity():
    img = torch.arange(16, dtype=torch.float32).reshape(1, 1, 4, 4).repeat(1, 3, 1, 1) / 15
    assert torch.equal(random_shift(img, 0), img)
    out = random_shift(img.repeat(32, 1, 1, 1), 2, torch.Generator().manual_seed(1))
    # a shifted copy only holds values of the original image (edges repeated, nothing invented)
    assert set(np.unique(out.numpy()).round(6)) <= set(np.unique(img.numpy()).round(6))


def test_augment_batch_adds_state_noise_and_leaves_the_rest():
    gen = torch.Generator().manual_seed(0)
    state = torch.zeros((4000, 6))
    batch = {"observation.state": state, "action": torch.ones((4000, 5, 6)), "task": ["x"] * 4000}
    out = augment_batch(batch, AugmentConfig(state_noise=2.0), [], gen)
    std = float(out["observation.state"].std())
    assert 1.9 < std < 2.1
    assert out["action"] is batch["action"] and torch.equal(batch["observation.state"], state)  # input untouched
    assert augment_batch(batch, AugmentConfig(), [], gen) is batch  # off: nothing copied


def test_augment_config_rejects_negative_values():
    with pytest.raises(ValueError, match="shift"):
        AugmentConfig(shift=-1)
    with pytest.raises(ValueError, match="state_noise"):
        AugmentConfig(state_noise=-0.5)


def test_train_with_augmentation_records_it_in_the_run_config(tmp_path):
    data = make_dataset(tmp_path / "ds")
    out = tmp_path / "run"
    cfg = TrainConfig(
        datasets=(str(data),),
        output_dir=str(out),
        steps=4,
        batch_size=4,
        warmup_steps=1,
        augment=AugmentConfig(shift=3, state_noise=1.0),
        model=SMALL,
    )
    train(cfg, log=lambda _: None, progress=False)
    saved = json.loads((out / "train_config.json").read_text())
    assert saved["augment"] == {"shift": 3, "state_noise": 1.0}
    assert np.isfinite(json.loads((out / "losses.json").read_text())["loss_tail"]).all()
