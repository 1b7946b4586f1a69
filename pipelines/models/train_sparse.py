"""``polyseek models train-sparse``: a learned lexical (sparse) head on the dense encoder.

BGE-M3 / mGTE style: each input token gets ``relu(w . h_t + b)`` from the frozen
encoder's last hidden state ``h_t``; a text's term weights are the max over repeats
of a token; the score of (query, document) is the dot product of their term
weights.  Trained with in-batch InfoNCE plus a FLOPS regulariser (sparsity) on
pairs from the *training* part of ``../shared/data``:

- Google taxonomy ids with ``id % 5 != 0``: a leaf in one locale -> the full path in
  the same locale and in English;
- IKEA ``train`` descriptions, German/French -> English.

Hidden states are computed once and cached in memory, so only the head trains.
"""

from __future__ import annotations

import pickle
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from pipelines.models.card import ModelPaths
from pipelines.models.export import SPARSE_HEAD_FILE
from pipelines.models.training_data import TAXONOMY_LOCALES, read_ikea, read_taxonomy

LOCALES = TAXONOMY_LOCALES


@dataclass
class SparseTrainConfig:
    max_category_ids: int = 1200
    max_ikea_pairs: int = 800
    max_tokens: int = 64
    epochs: int = 4
    batch_size: int = 64
    lr: float = 3e-3
    temperature: float = 1.0
    flops_weight: float = 1e-3
    seed: int = 7


def training_pairs(data_dir: Path, cfg: SparseTrainConfig) -> list[tuple[str, str]]:
    """(query, document) pairs from the training split only."""
    rng = random.Random(cfg.seed)
    tax = {lang: read_taxonomy(data_dir, lang, train_only=True) for lang in LOCALES}
    ids = sorted(tax["en"])
    rng.shuffle(ids)
    pairs = []
    for cid in ids[:cfg.max_category_ids]:
        for lang in LOCALES:
            if cid in tax[lang]:
                leaf = tax[lang][cid][-1]
                pairs.append((leaf, " > ".join(tax[lang][cid])))
                if lang != "en":
                    pairs.append((leaf, " > ".join(tax["en"][cid])))
    for other in ("de", "fr"):
        english, foreign = read_ikea(data_dir, "train", f"en-{other}")
        idx = list(range(min(len(english), len(foreign))))
        rng.shuffle(idx)
        pairs += [(foreign[i], english[i]) for i in idx[:cfg.max_ikea_pairs // 2]]
    rng.shuffle(pairs)
    return pairs


def _hidden_states(paths: ModelPaths, texts: list[str], max_tokens: int, batch: int = 64):
    """Token ids and last hidden states of each text (frozen encoder, torch, no grad)."""
    import torch
    from tokenizers import Tokenizer
    from transformers import AutoModel

    model = AutoModel.from_pretrained(paths.hf, add_pooling_layer=False).eval()
    tok = Tokenizer.from_file(str(paths.tokenizer))
    tok.enable_truncation(max_tokens)
    out_ids, out_h = [], []
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    results: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    with torch.no_grad():
        for start in tqdm(range(0, len(order), batch), desc="encoding (frozen)", unit="batch"):
            chunk = order[start:start + batch]
            encs = tok.encode_batch([texts[i] for i in chunk])
            longest = max(len(e.ids) for e in encs)
            ids = torch.full((len(encs), longest), 1, dtype=torch.long)
            mask = torch.zeros((len(encs), longest), dtype=torch.long)
            for r, e in enumerate(encs):
                ids[r, :len(e.ids)] = torch.tensor(e.ids)
                mask[r, :len(e.ids)] = 1
            hidden = model(input_ids=ids, attention_mask=mask).last_hidden_state
            for r, (i, e) in enumerate(zip(chunk, encs)):
                results[i] = (np.array(e.ids), hidden[r, :len(e.ids)].numpy().astype(np.float32))
    for i in range(len(texts)):
        out_ids.append(results[i][0])
        out_h.append(results[i][1])
    return out_ids, out_h


def train_sparse_head(paths: ModelPaths, data_dir: Path, cfg: SparseTrainConfig | None = None) -> dict:
    """Train the head, save it beside the HF weights; returns training statistics."""
    import torch

    cfg = cfg or SparseTrainConfig()
    torch.manual_seed(cfg.seed)
    pairs = training_pairs(data_dir, cfg)
    texts = sorted({t for p in pairs for t in p})
    index = {t: i for i, t in enumerate(texts)}
    cache = paths.root / "cache" / f"sparse-features-{len(texts)}-{cfg.max_tokens}.pkl"
    if cache.exists():
        ids, hidden = pickle.loads(cache.read_bytes())
    else:
        ids, hidden = _hidden_states(paths, texts, cfg.max_tokens)
        cache.parent.mkdir(parents=True, exist_ok=True)
        cache.write_bytes(pickle.dumps((ids, hidden)))
    special = {0, 1, 2, 3}  # <s>, <pad>, </s>, <unk> in the XLM-R vocabulary
    keep = [np.array([t not in special for t in x]) for x in ids]

    dim = hidden[0].shape[1]
    head = torch.nn.Linear(dim, 1)
    torch.nn.init.normal_(head.weight, std=0.02)
    torch.nn.init.constant_(head.bias, 0.5)
    opt = torch.optim.Adam(head.parameters(), lr=cfg.lr)

    def term_matrix(rows: list[int], vocab: dict[int, int]) -> torch.Tensor:
        out = []
        for i in rows:
            row = torch.zeros(len(vocab))
            h = torch.from_numpy(hidden[i][keep[i]])
            if len(h):
                w = torch.relu(head(h)).squeeze(-1)
                cols = torch.tensor([vocab[int(t)] for t in ids[i][keep[i]]])
                row = row.scatter_reduce(0, cols, w, reduce="amax", include_self=True)
            out.append(row)
        return torch.stack(out)

    stats = {"pairs": len(pairs), "texts": len(texts), "loss": []}
    for epoch in range(cfg.epochs):
        total, steps = 0.0, 0
        bar = tqdm(range(0, len(pairs), cfg.batch_size), desc=f"sparse epoch {epoch + 1}", unit="batch")
        for start in bar:
            batch = pairs[start:start + cfg.batch_size]
            if len(batch) < 2:
                continue
            qs, ds = [index[q] for q, _ in batch], [index[d] for _, d in batch]
            vocab: dict[int, int] = {}
            for i in qs + ds:
                for t in ids[i][keep[i]]:
                    vocab.setdefault(int(t), len(vocab))
            q_mat, d_mat = term_matrix(qs, vocab), term_matrix(ds, vocab)
            scores = q_mat @ d_mat.T / cfg.temperature
            loss = torch.nn.functional.cross_entropy(scores, torch.arange(len(batch)))
            flops = (q_mat.mean(0) ** 2).sum() + (d_mat.mean(0) ** 2).sum()
            (loss + cfg.flops_weight * flops).backward()
            opt.step()
            opt.zero_grad()
            total += float(loss)
            steps += 1
            bar.set_postfix(loss=f"{total / steps:.3f}", refresh=False)
        stats["loss"].append(round(total / max(steps, 1), 4))
    torch.save(head.state_dict(), paths.hf / SPARSE_HEAD_FILE)
    card = paths.read_card()
    card.extra["sparse_head"] = {"pairs": len(pairs), "epochs": cfg.epochs, "loss": stats["loss"]}
    paths.write_card(card)
    return stats
