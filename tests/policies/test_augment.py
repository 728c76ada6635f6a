"""Training augmentation (policies/augment.py): random image shift, state noise and instruction paraphrases, and
`onboard train` using them."""

import json

import numpy as np
import pytest
import torch

from policies.augment import AugmentConfig, augment_batch, paraphrase, random_shift
from policies.text import default_encoder
from policies.train import TrainConfig, train
from policies.vla.model import VLA
from tests.policies.test_train import SMALL, make_dataset


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
    assert saved["augment"] == {"shift": 3, "state_noise": 1.0, "paraphrases": []}
    assert np.isfinite(json.loads((out / "losses.json").read_text())["loss_tail"]).all()


GROUPS = (("pick up the red cube", "lift the red cube", "raise the red cube off the table"), ("touch the blue cube",))


def test_paraphrase_draws_every_member_of_the_group_and_keeps_the_rest():
    table = AugmentConfig(paraphrases=GROUPS).paraphrase_table()
    out = paraphrase(["pick up the red cube"] * 300 + ["lift the red cube", "wave"], table, torch.Generator())
    assert set(out[:300]) == set(GROUPS[0])  # the instruction itself included
    assert 60 < out[:300].count("lift the red cube") < 140  # uniform: ~100 of 300
    assert out[300] in GROUPS[0] and out[301] == "wave"  # any member maps into its group; no group: kept


def test_augment_batch_paraphrases_instructions_only():
    batch = {"observation.state": torch.zeros((50, 6)), "task": ["pick up the red cube"] * 50}
    out = augment_batch(batch, AugmentConfig(paraphrases=GROUPS), [], torch.Generator().manual_seed(0))
    assert set(out["task"]) == set(GROUPS[0]) and batch["task"] == ["pick up the red cube"] * 50
    assert out["observation.state"] is batch["observation.state"]


def test_augment_config_rejects_an_instruction_in_two_groups():
    with pytest.raises(ValueError, match="more than one group"):
        AugmentConfig(paraphrases=(("lift the red cube", "a"), ("b", "lift the red cube")))


def test_train_with_paraphrases_feeds_the_embeddings_of_other_phrasings(tmp_path, monkeypatch):
    """The dataset says "pick up the red cube" and "touch the blue cube"; the model is trained on the embeddings of
    all three red phrasings, and the blue touch, in no group with another phrasing, stays itself."""
    seen: list[torch.Tensor] = []
    real = VLA.compute_loss

    def spy(self, batch):
        seen.append(batch["task_embedding"].detach().clone())
        return real(self, batch)

    monkeypatch.setattr(VLA, "compute_loss", spy)
    data = make_dataset(tmp_path / "ds")
    groups = (*GROUPS, ("poke the blue block", "tap the blue block"))  # the data has neither: never drawn
    cfg = TrainConfig(
        datasets=(str(data),),
        output_dir=str(tmp_path / "run"),
        steps=12,
        batch_size=8,
        warmup_steps=1,
        augment=AugmentConfig(paraphrases=groups),
        model=SMALL,
    )
    train(cfg, log=lambda _: None, progress=False)
    encoder = default_encoder()
    every = [t for g in groups for t in g]
    reference = torch.stack([torch.as_tensor(np.array(encoder.embed(t))) for t in every])  # (T,384)
    used = torch.cat(seen)  # (12*8,384)
    nearest = (torch.cdist(used.float(), reference.float()).argmin(1)).tolist()
    assert torch.allclose(used.float(), reference[nearest].float(), atol=1e-5)  # each row is one phrasing's embedding
    assert {every[i] for i in nearest} == set(GROUPS[0]) | {"touch the blue cube"}
    saved = json.loads((tmp_path / "run" / "train_config.json").read_text())
    assert [tuple(g) for g in saved["augment"]["paraphrases"]] == list(groups)
