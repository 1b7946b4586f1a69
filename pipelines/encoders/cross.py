"""Runtime cross-encoder (reranker): onnxruntime + tokenizers, no torch.

The passage it reads of a product is :func:`pipelines.schema.rerank_text`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer

from pipelines.encoders.dense import Precision, pad_batch, session_options
from pipelines.models.card import ModelPaths


class CrossEncoder:
    """Score (query, passage) pairs with an exported cross-encoder; higher is more relevant."""

    def __init__(self, paths: ModelPaths, precision: Precision = "int8", *, threads: int = 2, max_length: int = 256):
        self.card = paths.read_card()
        if self.card.kind != "cross-encoder":
            raise ValueError(f"{paths.root.name} is a {self.card.kind} model, not a cross-encoder")
        self.session = ort.InferenceSession(str(paths.onnx(precision)), session_options(threads),
                                            providers=["CPUExecutionProvider"])
        self.tokenizer = Tokenizer.from_file(str(paths.tokenizer))
        self.tokenizer.enable_truncation(min(max_length, self.card.max_length), strategy="longest_first")
        self._pad_id = self.tokenizer.token_to_id("<pad>") or 0
        self.model_id = f"{self.card.model_id}+{precision}"

    def score(self, query: str, passages: list[str], batch_size: int = 16) -> np.ndarray:
        """Relevance logits of ``query`` against each passage, in input order."""
        out = np.empty(len(passages), np.float32)
        for start in range(0, len(passages), batch_size):
            chunk = passages[start:start + batch_size]
            encs = self.tokenizer.encode_batch([(self.card.query_prefix + query, self.card.passage_prefix + p)
                                                for p in chunk])
            ids, mask = pad_batch(encs, self._pad_id)
            (logits,) = self.session.run(None, {"input_ids": ids, "attention_mask": mask})
            out[start:start + len(chunk)] = logits[:, 0]
        return out


def open_cross_encoder(model_dir: Path, name: str, precision: Precision = "int8", **kw) -> CrossEncoder:
    return CrossEncoder(ModelPaths(model_dir / name), precision, **kw)
