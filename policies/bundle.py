"""`onboard export`: a trained VLA checkpoint -> a bundle that runs with onnxruntime and no torch.

    <bundle>/vla.onnx           state, images (uint8, B x 3 x H x W), instruction embedding -> action chunk
    <bundle>/text/              the sentence encoder: text_encoder_int8.onnx (all-MiniLM-L6-v2, dynamic int8, ~23 MB)
                                + tokenizer.json (tokenizers library)
    <bundle>/bundle.json        format, model config, input names, the text encoder's file and quantisation, origin,
                                and "files": {relative path: {"bytes": n, "sha256": hex}} of every file above

The whole bundle is ~30 MB, small enough for git. The int8 encoder's embeddings have cosine >= 0.99 to the fp32 torch
encoder's (tests/policies/test_bundle.py; docs/design.md). Bundles from before quantisation (text/text_encoder.onnx,
fp32, no "text_encoder" entry) still load.

A bundle is checked when it is loaded (``check_bundle``): bundle.json readable and of this format, every file it
needs present and non-empty, and, where bundle.json has a "files" manifest, each file's size and sha256 as recorded.
Every problem is a ``policies.errors.PolicyLoadError`` naming the file (older bundles without "files" get the
presence checks only); ``OnnxVLAPolicy`` then turns an ONNX graph or tokenizer that does not load into one too.

Exporting needs torch (``onboard[train]``); running the bundle needs only ``onboard[onnx]`` (``OnnxVLAPolicy``).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path, PurePosixPath
from typing import Any

from policies.checkpoints import resolve_policy_folder, training_step
from policies.errors import POLICY_FOLDERS, PolicyFileMissingError, PolicyLoadError
from policies.text import FP32_FILE, INT8_FILE, QUANTIZATION, export_text_onnx, first_line

FORMAT = "onboard-vla-onnx/1"
MANIFEST = "bundle.json"
POLICY_FILE = "vla.onnx"
TOKENIZER = "tokenizer.json"
LEGACY_TEXT_ENCODER = "text/text_encoder.onnx"  # bundles from before quantisation (no "text_encoder" entry)
BUNDLED = Path(__file__).resolve().parent / "bundled" / "so101_vla"  # the model this package ships
_CONFIG_KEYS = ("cameras", "image_size", "chunk_size")
_AGAIN = "copy the bundle again, or export it again with `onboard export`"


def export_bundle(checkpoint: str | Path, out_dir: str | Path, *, recipe: dict[str, Any] | None = None) -> Path:
    """The checkpoint as an ONNX bundle in ``out_dir``; ``recipe``: how the model was made (bundle.json's
    ``recipe``, e.g. scripts/make_model.sh's record of its settings and stage times)."""
    from policies.vla.checkpoint import load_checkpoint
    from policies.vla.export import export_onnx, input_names

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model, config, _stats = load_checkpoint(checkpoint)
    export_onnx(model, out / "vla.onnx")
    export_text_onnx(out / "text", quantize=True)
    stale = out / "text" / FP32_FILE  # an fp32 encoder from an older export into the same folder
    if stale.is_file():
        stale.unlink()
    text_file = f"text/{INT8_FILE}"
    manifest = {
        "format": FORMAT,
        "config": config.to_dict(),
        "inputs": input_names(model),
        "outputs": ["action"],
        "text_encoder": {"file": text_file, "quantization": QUANTIZATION},
        "checkpoint": str(checkpoint),  # as given (an absolute path would leak the exporting machine's layout)
    }
    training = _training_config(resolve_policy_folder(checkpoint))
    if training is not None:
        step = training_step(checkpoint)
        if step is not None:
            training["step"] = step
        manifest["training"] = training
    if recipe is not None:
        manifest["recipe"] = recipe
    manifest["files"] = files_manifest(out, [POLICY_FILE, text_file, f"text/{TOKENIZER}"])
    tmp = out / ".bundle.json.tmp"
    tmp.write_text(json.dumps(manifest, indent=2))
    os.replace(tmp, out / "bundle.json")  # written last: a bundle without it is incomplete
    return out


def _training_config(checkpoint: Path) -> dict | None:
    """The run's train_config.json, if it is there: in the checkpoint's own folder (``pretrained_model/``, as LeRobot
    writes it), or in the run's folder above (the layout before, with checkpoints/<step>/ and last/)."""
    for folder in (checkpoint, checkpoint.parent, checkpoint.parent.parent):
        path = folder / "train_config.json"
        if path.is_file():
            try:
                return json.loads(path.read_text())
            except ValueError:
                return None
    return None


def file_entry(path: str | Path) -> dict[str, Any]:
    """{"bytes": size, "sha256": hex digest} of one file, as bundle.json's "files" records it."""
    with open(path, "rb") as f:
        digest = hashlib.file_digest(f, "sha256").hexdigest()
    return {"bytes": Path(path).stat().st_size, "sha256": digest}


def files_manifest(folder: str | Path, names: list[str]) -> dict[str, dict[str, Any]]:
    """bundle.json's "files": {relative path (posix): file_entry} of ``names`` under ``folder``."""
    return {name: file_entry(Path(folder) / name) for name in names}


def read_manifest(folder: str | Path) -> dict[str, Any]:
    """The bundle.json of ``folder``, checked: the folder exists, the file is there, is a JSON object of this
    format with a model config. Raises ``PolicyLoadError`` (``PolicyFileMissingError`` for what is missing)."""
    folder = Path(folder)
    if not folder.exists():
        raise PolicyFileMissingError(f"policy bundle {folder} does not exist")
    if not folder.is_dir():
        raise PolicyLoadError(f"{folder} is a file, not a policy folder; pass {POLICY_FOLDERS}")
    path = folder / MANIFEST
    if not path.is_file():
        raise PolicyFileMissingError(f"{folder} is not a policy bundle (no {MANIFEST}); pass {POLICY_FOLDERS}")
    try:
        manifest = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise PolicyLoadError(f"{path} is not valid JSON ({first_line(exc)}): {_AGAIN}") from None
    if not isinstance(manifest, dict):
        raise PolicyLoadError(f"{path} is not a JSON object: {_AGAIN}")
    if manifest.get("format") != FORMAT:
        raise PolicyLoadError(f"{path}: bundle format {manifest.get('format')!r}, this version reads {FORMAT!r}")
    config = manifest.get("config")
    missing = [k for k in _CONFIG_KEYS if not isinstance(config, dict) or k not in config]
    if missing or not isinstance(manifest.get("inputs"), list):
        what = f"config.{', config.'.join(missing)}" if missing else "inputs"
        raise PolicyLoadError(f"{path} has no {what}: {_AGAIN}")
    return manifest


def text_encoder_file(manifest: dict[str, Any]) -> str:
    """The text encoder's path in the bundle (relative, posix): the "text_encoder" entry, or the fp32 file of bundles
    from before quantisation."""
    text = manifest.get("text_encoder")
    if isinstance(text, dict) and isinstance(text.get("file"), str):
        return text["file"]
    return LEGACY_TEXT_ENCODER


def needed_files(manifest: dict[str, Any]) -> list[str]:
    """The files a bundle needs to run (relative, posix): the policy graph, the text encoder, its tokenizer."""
    encoder = PurePosixPath(text_encoder_file(manifest))
    return [POLICY_FILE, str(encoder), str(encoder.parent / TOKENIZER)]


def check_bundle(folder: str | Path, *, hashes: bool = True) -> dict[str, Any]:
    """Check a bundle before loading it (module doc) and return its bundle.json. ``hashes=False``: sizes only."""
    folder = Path(folder)
    manifest = read_manifest(folder)
    for name in needed_files(manifest):
        path = folder / name
        if not path.is_file():
            raise PolicyFileMissingError(f"{path} is missing from the bundle: {_AGAIN}")
        if path.stat().st_size == 0:
            raise PolicyLoadError(f"{path} is empty: {_AGAIN}")
    files = manifest.get("files")
    if files is None:  # exported before bundles recorded their files
        return manifest
    if not isinstance(files, dict):
        raise PolicyLoadError(f'{folder / MANIFEST}: "files" is not an object: {_AGAIN}')
    for name, entry in files.items():
        rel = PurePosixPath(name)
        if rel.is_absolute() or ".." in rel.parts or not isinstance(entry, dict):
            raise PolicyLoadError(f'{folder / MANIFEST}: bad "files" entry {name!r}: {_AGAIN}')
        path = folder / rel
        if not path.is_file():
            raise PolicyFileMissingError(f"{path} is missing from the bundle: {_AGAIN}")
        size = path.stat().st_size
        if "bytes" in entry and size != entry["bytes"]:
            how = "truncated" if size < entry["bytes"] else "not the exported file"
            raise PolicyLoadError(f"{path} is {size} bytes, {MANIFEST} records {entry['bytes']} ({how}): {_AGAIN}")
        if hashes and "sha256" in entry and file_entry(path)["sha256"] != entry["sha256"]:
            raise PolicyLoadError(f"{path} does not match its sha256 in {MANIFEST} (damaged or replaced): {_AGAIN}")
    return manifest
