"""A damaged bundle or checkpoint is a PolicyLoadError naming the file, never an onnxruntime/tokenizers traceback:
each case damages a copy of the shipped bundle (policies/bundled/so101_vla) in tmp_path, with and without the
"files" manifest that `onboard export` now writes (older bundles have none: then the graphs' own loading catches it).
Through the CLI, `onboard run`, `eval` and `demo` exit 2 with one line (tests/onboard/cli/test_bad_input_policy.py)."""

import json
import os
import shutil

import pytest

from policies.bundle import BUNDLED, check_bundle, file_entry, files_manifest, needed_files
from policies.errors import PolicyFileMissingError, PolicyLoadError
from tests.conftest import require

ENCODER = "text/text_encoder_int8.onnx"
TOKENIZER = "text/tokenizer.json"


def copy_bundle(dst, *, manifest: bool = True):
    """The shipped bundle, hard-linked into ``dst`` (cheap); ``damage`` replaces a file, never writes through a
    link. ``manifest=False``: bundle.json without "files", as exported before this check existed."""
    shutil.copytree(BUNDLED, dst, copy_function=os.link)
    if not manifest:
        data = json.loads((dst / "bundle.json").read_text())
        del data["files"]
        replace(dst / "bundle.json", json.dumps(data).encode())
    return dst


def replace(path, data: bytes) -> None:
    path.unlink()
    path.write_bytes(data)


def damage(path, how: str) -> None:
    data = path.read_bytes()
    if how == "missing":
        path.unlink()
    elif how == "empty":
        replace(path, b"")
    elif how == "truncated":
        replace(path, data[: len(data) // 3])
    elif how == "garbage":  # a text file where the graph / tokenizer should be
        replace(path, b"this is not a model\n" * 100)
    elif how == "flipped":  # same size, one byte changed in the middle: only the hash can tell
        mid = len(data) // 2
        replace(path, data[:mid] + bytes([data[mid] ^ 0xFF]) + data[mid + 1 :])
    else:
        raise AssertionError(how)


def test_the_shipped_manifest_records_every_file_it_needs():
    manifest = check_bundle(BUNDLED)
    assert sorted(manifest["files"]) == sorted(needed_files(manifest)) == sorted(["vla.onnx", ENCODER, TOKENIZER])
    assert manifest["files"] == files_manifest(BUNDLED, needed_files(manifest))
    entry = manifest["files"]["vla.onnx"]
    assert entry["bytes"] == (BUNDLED / "vla.onnx").stat().st_size and len(entry["sha256"]) == 64


@pytest.mark.parametrize(
    "name,how,message",
    [
        ("vla.onnx", "missing", "missing"),
        ("vla.onnx", "truncated", "truncated"),
        ("vla.onnx", "garbage", "bytes"),
        ("vla.onnx", "flipped", "sha256"),
        (ENCODER, "missing", "missing"),
        (ENCODER, "empty", "empty"),
        (TOKENIZER, "garbage", "bytes"),
        (TOKENIZER, "flipped", "sha256"),
    ],
)
def test_check_bundle_names_the_damaged_file(tmp_path, name, how, message):
    bundle = copy_bundle(tmp_path / "b")
    damage(bundle / name, how)
    with pytest.raises(PolicyLoadError, match=message) as err:
        check_bundle(bundle)
    assert str(bundle / name) in str(err.value)
    assert isinstance(err.value, FileNotFoundError) == (how == "missing")


@pytest.mark.parametrize(
    "name,how",
    [
        ("vla.onnx", "truncated"),
        ("vla.onnx", "garbage"),
        ("vla.onnx", "missing"),
        (ENCODER, "garbage"),
        (ENCODER, "truncated"),
        (TOKENIZER, "garbage"),
        (TOKENIZER, "truncated"),
        (TOKENIZER, "missing"),
    ],
)
def test_a_bundle_without_manifest_is_caught_when_its_graphs_load(tmp_path, name, how):
    """Without "files" only the presence checks run before loading: onnxruntime's and tokenizers' own failures
    become PolicyLoadError naming the file, at construction (the text encoder is loaded eagerly, not at reset)."""
    require("onnxruntime", "onnx")
    from policies.onnx_policy import OnnxVLAPolicy

    bundle = copy_bundle(tmp_path / "b", manifest=False)
    damage(bundle / name, how)
    with pytest.raises(PolicyLoadError) as err:
        OnnxVLAPolicy(bundle)
    assert str(bundle / name) in str(err.value)
    assert "\n" not in str(err.value)


def test_bundle_json_missing_garbage_or_a_file(tmp_path):
    bundle = copy_bundle(tmp_path / "b")
    (bundle / "bundle.json").unlink()
    accepted = r"no bundle\.json.*ONNX bundle.*LeRobot checkpoint.*VLA checkpoint"
    with pytest.raises(PolicyFileMissingError, match=accepted):
        check_bundle(bundle)
    (bundle / "bundle.json").write_text("{not json")
    with pytest.raises(PolicyLoadError, match=r"bundle\.json is not valid JSON"):
        check_bundle(bundle)
    (bundle / "bundle.json").write_text("[1, 2]")
    with pytest.raises(PolicyLoadError, match="not a JSON object"):
        check_bundle(bundle)
    (bundle / "bundle.json").write_text(json.dumps({"format": "onboard-vla-onnx/1", "inputs": []}))
    with pytest.raises(PolicyLoadError, match=r"no config\.cameras"):
        check_bundle(bundle)
    text = tmp_path / "bundle.txt"
    text.write_text("a bundle that is a text file")
    with pytest.raises(PolicyLoadError, match="is a file, not a policy folder"):
        check_bundle(text)


def test_a_manifest_entry_outside_the_bundle_is_refused(tmp_path):
    bundle = copy_bundle(tmp_path / "b")
    data = json.loads((bundle / "bundle.json").read_text())
    data["files"]["../elsewhere"] = file_entry(bundle / "vla.onnx")
    replace(bundle / "bundle.json", json.dumps(data).encode())
    with pytest.raises(PolicyLoadError, match=r"bad \"files\" entry '\.\./elsewhere'"):
        check_bundle(bundle)


def test_graph_inputs_must_match_the_manifest(tmp_path):
    """vla.onnx from another export (inputs renamed in bundle.json, sizes and hashes still right)."""
    require("onnxruntime", "onnx")
    from policies.onnx_policy import OnnxVLAPolicy

    bundle = copy_bundle(tmp_path / "b")
    data = json.loads((bundle / "bundle.json").read_text())
    data["inputs"] = [*data["inputs"][:-1], "instruction"]
    replace(bundle / "bundle.json", json.dumps(data).encode())
    with pytest.raises(PolicyLoadError, match=r"vla\.onnx takes inputs .* records"):
        OnnxVLAPolicy(bundle)


def test_policy_folders_by_kind_name_what_is_accepted(tmp_path):
    from robot.policy_loader import load_policy, policy_kind

    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(PolicyFileMissingError, match=r"no bundle\.json or config\.json; pass an ONNX bundle"):
        policy_kind(empty)
    run = tmp_path / "run"
    (run / "last").mkdir(parents=True)
    (run / "last" / "config.json").write_text("{}")
    with pytest.raises(PolicyLoadError, match=r"last/config\.json has type None"):  # a run stands for its newest
        load_policy(run)
    text = tmp_path / "policy.txt"
    text.write_text("hello")
    with pytest.raises(PolicyLoadError, match="is a file, not a policy folder"):
        policy_kind(text)
    with pytest.raises(PolicyLoadError, match="is a file, not a policy folder"):
        load_policy(text, "onnx")


def test_damaged_vla_checkpoint_names_the_file(tmp_path):
    require("torch", "train")
    import torch

    from policies.vla.checkpoint import load_checkpoint, save_checkpoint
    from policies.vla.config import VLAConfig
    from policies.vla.model import VLA

    config = VLAConfig(image_size=32, conv_channels=(8, 8), d_model=16, n_heads=2, chunk_size=4)
    torch.manual_seed(0)
    ckpt = save_checkpoint(tmp_path / "ckpt", VLA(config), config)
    load_checkpoint(ckpt)  # intact: loads

    weights = ckpt / "model.safetensors"
    good = weights.read_bytes()
    damage(weights, "truncated")
    with pytest.raises(PolicyLoadError, match=r"model\.safetensors cannot be read"):
        load_checkpoint(ckpt)
    weights.unlink()
    with pytest.raises(PolicyFileMissingError, match=r"model\.safetensors is missing"):
        load_checkpoint(ckpt)
    other = VLAConfig(image_size=32, conv_channels=(8, 8), d_model=32, n_heads=2, chunk_size=4)
    save_checkpoint(tmp_path / "other", VLA(other), other)
    os.replace(tmp_path / "other" / "model.safetensors", weights)
    with pytest.raises(PolicyLoadError, match=r"does not fit .*config\.json"):
        load_checkpoint(ckpt)
    weights.write_bytes(good)
    (ckpt / "stats.json").write_text("{garbage")
    with pytest.raises(PolicyLoadError, match=r"stats\.json is not valid JSON"):
        load_checkpoint(ckpt)
    (ckpt / "stats.json").write_text("{}")
    meta = json.loads((ckpt / "config.json").read_text())
    (ckpt / "config.json").write_text(json.dumps({"type": "act"}))
    with pytest.raises(PolicyLoadError, match=r"--policy\.type=lerobot"):
        load_checkpoint(ckpt)
    (ckpt / "config.json").write_text(json.dumps({**meta, "config": {"nonsense": 1}}))
    with pytest.raises(PolicyLoadError, match="not a VLA config"):
        load_checkpoint(ckpt)
    (ckpt / "config.json").unlink()
    with pytest.raises(PolicyFileMissingError, match=r"not a VLA checkpoint \(no config\.json\); pass an ONNX bundle"):
        load_checkpoint(ckpt)
