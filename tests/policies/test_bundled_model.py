"""The shipped model, policies/bundled/so101_vla: its files are what bundle.json says, and it picks the red cube
torch-free, through `onboard demo`'s own episode code, on a fixed seed."""

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np

import policies
from policies.bundle import FORMAT
from policies.vla.config import VLAConfig
from tests.conftest import require

BUNDLE = Path(policies.__file__).resolve().parent / "bundled" / "so101_vla"
ROOT = Path(__file__).resolve().parents[2]

# torch (and what needs it) cannot be imported in the child process: a meta-path finder refuses it, as in
# tests/test_layering.py, so the run fails loudly if anything on the demo's path reaches for it
BLOCK_TORCH = textwrap.dedent(
    """
    import importlib.abc, sys

    class _NoTorch(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ("torch", "transformers", "lerobot", "ray"):
                raise ImportError(f"{name} is blocked in this test (the demo install has no torch)")
            return None

    sys.meta_path.insert(0, _NoTorch())
    """
)


def _value_info(v) -> tuple[str, int, list]:
    return v.name, v.type.tensor_type.elem_type, [d.dim_value or d.dim_param for d in v.type.tensor_type.shape.dim]


def test_the_shipped_bundle_is_what_its_manifest_says():
    """bundle.json (written by policies.bundle.export_bundle) records the format, the model config, the model's
    input and output names and the text encoder's file and quantisation: each is checked against the files."""
    ort = require("onnxruntime", "onnx")
    onnx = require("onnx", "train")  # reading the graphs: the onnx package (no torch)

    manifest = json.loads((BUNDLE / "bundle.json").read_text())
    assert manifest["format"] == FORMAT
    config = VLAConfig.from_dict(manifest["config"])  # a valid config, and the one the run trained
    assert VLAConfig.from_dict(manifest["training"]["model"]) == config
    text_file = manifest["text_encoder"]["file"]
    files = sorted(str(p.relative_to(BUNDLE)) for p in BUNDLE.rglob("*") if p.is_file())
    # every file the manifest names, the tokenizer beside the encoder, the model card; nothing stale (an fp32 encoder,
    # external weights next to vla.onnx)
    assert files == sorted(["README.md", "bundle.json", "vla.onnx", text_file, "text/tokenizer.json"]), files
    assert sum((BUNDLE / f).stat().st_size for f in files) < 32e6  # small enough for git (~30 MB)

    # the policy network: the manifest's inputs, in its order, with the config's shapes; its outputs
    model = onnx.load(str(BUNDLE / "vla.onnx"))
    onnx.checker.check_model(model)
    float32, uint8 = onnx.TensorProto.FLOAT, onnx.TensorProto.UINT8
    size = config.image_size
    expected_inputs = [("observation.state", float32, ["batch", config.state_dim])]
    expected_inputs += [(f"observation.images.{c}", uint8, ["batch", 3, size, size]) for c in config.cameras]
    expected_inputs += [("task_embedding", float32, ["batch", config.text_dim])]
    assert [_value_info(v) for v in model.graph.input] == expected_inputs
    assert [v.name for v in model.graph.input] == manifest["inputs"]
    assert [v.name for v in model.graph.output] == manifest["outputs"] == ["action"]
    session = ort.InferenceSession(str(BUNDLE / "vla.onnx"), providers=["CPUExecutionProvider"])
    feeds = {
        name: np.zeros([2 if d == "batch" else d for d in dims], onnx.helper.tensor_dtype_to_np_dtype(t))
        for name, t, dims in expected_inputs
    }
    (actions,) = session.run(None, feeds)
    assert actions.shape == (2, config.chunk_size, config.action_dim) and np.isfinite(actions).all()

    # the text encoder: the file named, int8 as recorded (dynamic quantisation: integer MatMuls), embedding text_dim
    assert "dynamic int8" in manifest["text_encoder"]["quantization"]
    encoder = onnx.load(str(BUNDLE / text_file))
    ops = {node.op_type for node in encoder.graph.node}
    assert {"MatMulInteger", "DynamicQuantizeLinear"} <= ops, sorted(ops)
    assert [_value_info(v) for v in encoder.graph.output] == [("embedding", float32, ["batch", config.text_dim])]


def test_the_shipped_bundle_picks_the_red_cube_without_torch(tmp_path):
    """`onboard demo`'s episode (onboard.demo.policy.run_policy_demo: SO101Env with safety on, the async runner, 0 ms
    emulated latency, on the sim clock) in a process where torch cannot be imported. Layout seed 0: picked at 5.07 s
    of sim time when this test was written (under 5 s of wall time on 2 cores)."""
    require("onnxruntime", "onnx")
    require("mujoco", "sim")
    video = tmp_path / "demo.mp4"
    script = BLOCK_TORCH + textwrap.dedent(
        f"""
        import json
        from onboard.demo.policy import run_policy_demo

        lines = []
        result = run_policy_demo(
            "pick up the red cube", {str(BUNDLE)!r}, seed=0, out={str(video)!r}, log=lines.append
        )
        heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "transformers", "lerobot"))
        print(json.dumps({{"result": result, "heavy": heavy, "log": lines}}, default=str))
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    result = out["result"]
    assert out["heavy"] == []
    assert (result["task"], result["color"], result["seed"]) == ("pick", "red", 0)
    assert result["success"] is True, "\n".join(out["log"])
    assert 0 < result["time_to_success"] < 10.0  # within the pick task's time limit
    assert result["infer_ms"]["n"] > 0  # the bundle chose the actions
    assert video.stat().st_size > 10_000
