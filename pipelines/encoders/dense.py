"""Runtime text encoder: onnxruntime + tokenizers, no torch.

One ONNX pass gives the dense ``sentence_embedding`` and, when the model was
exported with a sparse head, per-token ``token_weights`` that
:func:`sparse_terms` turns into ``rank_features`` keyed by token string.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Literal

import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer

from pipelines.models.card import ModelCard, ModelPaths, fingerprint

log = logging.getLogger(__name__)

Precision = Literal["fp32", "int8"]


@dataclass
class Encoded:
    """Embeddings of a batch of texts, in input order."""

    dense: np.ndarray  # [n, dims], L2-normalised
    sparse: list[dict[str, float]] | None  # token string -> weight, per text
    truncated: list[bool]  # True where the text was longer than max_length
    token_counts: list[int]


@dataclass
class EncodedDocuments:
    """Embeddings of long texts split into chunks, in input order.

    ``dense[i]`` is the vector of text ``i``'s first chunk (the title and the start of
    the description); ``chunks[i]`` holds the vectors of its further chunks (empty for
    a text that fits one chunk); ``sparse[i]`` is the max over all of its chunks.
    """

    dense: np.ndarray  # [n, dims]
    chunks: list[np.ndarray]  # per text: [k_i, dims], k_i >= 0
    sparse: list[dict[str, float]] | None
    truncated: list[bool]  # True only where a text had more than max_chunks chunks
    token_counts: list[int]  # tokens of the whole text (no prefix, no special tokens)


def feature_key(token: str) -> str:
    """A ``rank_features`` key for a token string.

    Field names cannot contain '.', so '%' and '.' are percent-escaped (reversible).
    """
    return token.replace("%", "%25").replace(".", "%2E")


def pad_batch(encodings: list, pad_id: int) -> tuple[np.ndarray, np.ndarray]:
    """``input_ids`` and ``attention_mask`` padded to the batch's longest encoding (not max_length)."""
    longest = max(len(e.ids) for e in encodings)
    ids = np.full((len(encodings), longest), pad_id, dtype=np.int64)
    mask = np.zeros((len(encodings), longest), dtype=np.int64)
    for row, enc in enumerate(encodings):
        ids[row, :len(enc.ids)] = enc.ids
        mask[row, :len(enc.ids)] = 1
    return ids, mask


def session_options(threads: int) -> ort.SessionOptions:
    """Sequential execution with ``threads`` intra-op threads (2 cores: 2 threads, 1 session)."""
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return opts


class TextEncoder:
    """Encode queries and passages with an exported model.

    Thread-safe: onnxruntime sessions may be run concurrently; the query cache
    has its own lock.
    """

    def __init__(self, paths: ModelPaths, precision: Precision = "int8", *, threads: int = 2,
                 max_length: int | None = None, query_cache_size: int = 4096):
        self.paths = paths
        self.card: ModelCard = paths.read_card()
        self.precision = precision
        onnx_path = paths.onnx(precision)
        if not onnx_path.exists():
            raise FileNotFoundError(f"{onnx_path} missing (run `polyseek models build`)")
        self.session = ort.InferenceSession(str(onnx_path), session_options(threads),
                                            providers=["CPUExecutionProvider"])
        self.output_names = [o.name for o in self.session.get_outputs()]
        self.tokenizer = Tokenizer.from_file(str(paths.tokenizer))
        self.max_length = min(max_length or self.card.max_length, self.card.max_length)
        self.tokenizer.enable_truncation(self.max_length)
        self.tokenizer.no_padding()
        self._pad_id = self.tokenizer.token_to_id("<pad>") or self.tokenizer.token_to_id("[PAD]") or 0
        self._special_ids = {self.tokenizer.token_to_id(t) for t in
                             ("<s>", "</s>", "<pad>", "<unk>", "[CLS]", "[SEP]", "[PAD]", "[UNK]")} - {None}
        self._splitter = Tokenizer.from_str(self.tokenizer.to_str())
        self._splitter.no_truncation()
        # tokens a chunk may hold: the model's length less the special tokens and the passage prefix
        self._chunk_budget = self.max_length - 2 - len(
            self._splitter.encode(self.card.passage_prefix, add_special_tokens=False).ids)
        self._cache: OrderedDict[str, tuple[np.ndarray, dict[str, float] | None]] = OrderedDict()
        self._cache_size = query_cache_size
        self._lock = threading.Lock()

    @property
    def model_id(self) -> str:
        return f"{self.card.model_id}+{self.precision}"

    @cached_property
    def fingerprint(self) -> str:
        """The model's content hash (:func:`~pipelines.models.card.fingerprint`): the card's, read at load."""
        if not self.card.fingerprint:
            log.info("model %s: the card records no fingerprint; computing it (`polyseek models build` records it)",
                     self.card.name)
        return fingerprint(self.paths, self.card)

    @property
    def dims(self) -> int:
        return int(self.session.get_outputs()[0].shape[-1] or self.card.dims)

    @property
    def has_sparse(self) -> bool:
        return "token_weights" in self.output_names

    # -- core --------------------------------------------------------------------
    def _run(self, texts: list[str], prefix_chars: int = 0) -> Encoded:
        encodings = self.tokenizer.encode_batch(texts)
        lengths = [len(e.ids) for e in encodings]
        truncated = [bool(e.overflowing) for e in encodings]
        ids, mask = pad_batch(encodings, self._pad_id)
        outputs = self.session.run(None, {"input_ids": ids, "attention_mask": mask})
        named = dict(zip(self.output_names, outputs))
        sparse = None
        if "token_weights" in named:
            sparse = [self._sparse_terms(enc, w, prefix_chars) for enc, w in zip(encodings, named["token_weights"])]
        if any(truncated):
            log.info("%d of %d texts truncated to %d tokens", sum(truncated), len(texts), self.max_length)
        return Encoded(named["sentence_embedding"].astype(np.float32), sparse, truncated, lengths)

    def _sparse_terms(self, enc, weights: np.ndarray, prefix_chars: int) -> dict[str, float]:
        """Term weights of one text: max over repeats, without special and prompt tokens."""
        terms: dict[str, float] = {}
        for tid, (_, end), w in zip(enc.ids, enc.offsets, weights[:len(enc.ids)]):
            if w <= 0 or tid in self._special_ids or end <= prefix_chars:
                continue
            key = feature_key(self.tokenizer.id_to_token(tid))
            if w > terms.get(key, 0.0):
                terms[key] = float(w)
        return terms

    def encode(self, texts: list[str], *, is_query: bool = False, batch_size: int = 32) -> Encoded:
        """Encode texts with the model's query or passage prefix, ``batch_size`` at a time.

        Each batch is padded to its own longest text, not to ``max_length``; texts are
        sorted by length first so that batches waste little padding.
        """
        prefix = self.card.query_prefix if is_query else self.card.passage_prefix
        if not texts:
            return Encoded(np.zeros((0, self.dims), np.float32), [] if self.has_sparse else None, [], [])
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        parts = [self._run([prefix + texts[i] for i in order[s:s + batch_size]], len(prefix))
                 for s in range(0, len(texts), batch_size)]
        dense = np.empty((len(texts), parts[0].dense.shape[1]), np.float32)
        sparse: list[dict[str, float]] | None = [{}] * len(texts) if self.has_sparse else None
        truncated = [False] * len(texts)
        counts = [0] * len(texts)
        flat = [(p, j) for p in parts for j in range(len(p.truncated))]
        for original, (part, j) in zip(order, flat):
            dense[original] = part.dense[j]
            truncated[original] = part.truncated[j]
            counts[original] = part.token_counts[j]
            if sparse is not None and part.sparse is not None:
                sparse[original] = part.sparse[j]
        return Encoded(dense, sparse, truncated, counts)

    def chunk_spans(self, text: str, chunk_tokens: int, overlap: int = 0) -> list[tuple[int, int]]:
        """Character spans of ``text`` in windows of ``chunk_tokens`` tokens, ``overlap`` shared.

        Windows are cut on token boundaries of the model's own tokenizer, so each chunk
        encodes without truncation (``chunk_tokens`` is capped to fit the model with its
        passage prefix and special tokens).
        """
        return self._spans(self._splitter.encode(text, add_special_tokens=False), len(text), chunk_tokens, overlap)

    def _spans(self, encoding, text_len: int, chunk_tokens: int, overlap: int) -> list[tuple[int, int]]:
        size = max(8, min(chunk_tokens, self._chunk_budget))
        step = max(1, size - max(0, min(overlap, size // 2)))
        offsets = [o for o in encoding.offsets if o[1] > o[0]]
        if len(offsets) <= size:
            return [(0, text_len)]
        spans = []
        for start in range(0, len(offsets), step):
            window = offsets[start:start + size]
            spans.append((0 if start == 0 else window[0][0], window[-1][1]))
            if start + size >= len(offsets):
                break
        return spans

    def encode_documents(self, texts: list[str], *, chunk_tokens: int = 256, overlap: int = 32,
                         max_chunks: int = 16, batch_size: int = 32) -> EncodedDocuments:
        """Passages of any length: each text is split into chunks, every chunk embedded.

        Nothing is cut silently: a text longer than ``max_chunks`` chunks keeps its first
        ``max_chunks`` and is reported in ``truncated``.  All chunks of all texts share
        the batches (sorted by length), so a long text costs only its own tokens.
        """
        pieces: list[str] = []
        owner: list[int] = []
        truncated = []
        counts = []
        encodings = self._splitter.encode_batch(texts, add_special_tokens=False)
        for i, (text, encoding) in enumerate(zip(texts, encodings)):
            spans = self._spans(encoding, len(text), chunk_tokens, overlap)
            truncated.append(len(spans) > max_chunks)
            counts.append(len(encoding.ids))
            for start, end in spans[:max_chunks]:
                pieces.append(text[start:end])
                owner.append(i)
        enc = self.encode(pieces, batch_size=batch_size)
        first: dict[int, int] = {}
        extra: list[list[int]] = [[] for _ in texts]
        for row, i in enumerate(owner):
            if i in first:
                extra[i].append(row)
            else:
                first[i] = row
        dims = enc.dense.shape[1] if len(pieces) else self.dims
        dense = enc.dense[[first[i] for i in range(len(texts))]] if texts else np.zeros((0, dims), np.float32)
        sparse = None
        if enc.sparse is not None:
            sparse = []
            for i in range(len(texts)):
                merged = dict(enc.sparse[first[i]])
                for row in extra[i]:
                    for term, w in enc.sparse[row].items():
                        if w > merged.get(term, 0.0):
                            merged[term] = w
                sparse.append(merged)
        chunks = [enc.dense[rows] if rows else np.zeros((0, dims), np.float32) for rows in extra]
        return EncodedDocuments(dense, chunks, sparse, truncated, counts)

    def encode_query(self, text: str) -> tuple[np.ndarray, dict[str, float] | None]:
        """One query's dense vector and sparse terms, from an LRU cache when repeated."""
        with self._lock:
            hit = self._cache.get(text)
            if hit is not None:
                self._cache.move_to_end(text)
                return hit
        enc = self._run([self.card.query_prefix + text], len(self.card.query_prefix))
        value = (enc.dense[0], enc.sparse[0] if enc.sparse else None)
        with self._lock:
            self._cache[text] = value
            if len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return value


def open_encoder(model_dir: Path, name: str, precision: Precision = "int8", **kwargs) -> TextEncoder:
    """The encoder ``name`` from the model cache."""
    return TextEncoder(ModelPaths(model_dir / name), precision, **kwargs)
