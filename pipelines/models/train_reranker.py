"""``polyseek models train-reranker``: a multilingual cross-encoder from the e5-small backbone.

No multilingual cross-encoder is reachable here, so one is fine-tuned: the imported
multilingual-e5-small weights in a ``BertForSequenceClassification`` (one logit),
lower layers frozen, trained listwise (softmax over one positive and hard negatives
mined with the dense encoder) on the *training* split of ``../shared/data``:
taxonomy leaves (any locale) -> English leaf + path, IKEA German/French -> English.
Training stops at ``max_minutes``.  Exported to ONNX int8 like the encoder.

Users with a hub plug in any HF cross-encoder instead:
``polyseek models import BAAI/bge-reranker-v2-m3 --name bge-reranker`` (kind cross-encoder).
"""

from __future__ import annotations

import random
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from pipelines.models.card import ModelCard, ModelPaths
from pipelines.models.training_data import TAXONOMY_LOCALES, read_ikea, read_taxonomy


@dataclass
class RerankerTrainConfig:
    max_category_ids: int = 4000
    max_ikea: int = 1200
    negatives: int = 3
    queries_per_step: int = 8
    max_length: int = 128  # pairs are truncated longest-first to this in training and serving
    trainable_layers: int = 3
    lr: float = 5e-5
    max_minutes: float = 25.0
    max_steps: int = 3000
    seed: int = 11


def training_examples(data_dir: Path, cfg: RerankerTrainConfig) -> tuple[list[tuple[str, int]], list[str]]:
    """(query, index of its positive document) pairs and the document texts, training split only."""
    rng = random.Random(cfg.seed)
    tax = {lang: read_taxonomy(data_dir, lang, train_only=True) for lang in TAXONOMY_LOCALES}
    docs: list[str] = []
    doc_of: dict[int, int] = {}
    for cid, levels in tax["en"].items():
        doc_of[cid] = len(docs)
        docs.append(f"{levels[-1]} . {' > '.join(levels)}")
    ids = sorted(tax["en"])
    rng.shuffle(ids)
    examples = []
    for cid in ids[:cfg.max_category_ids]:
        lang = rng.choice([lang for lang in TAXONOMY_LOCALES if cid in tax[lang]])
        examples.append((tax[lang][cid][-1], doc_of[cid]))
    for other in ("de", "fr"):
        english, foreign = read_ikea(data_dir, "train", f"en-{other}")
        for i in rng.sample(range(min(len(english), len(foreign))), cfg.max_ikea // 2):
            examples.append((foreign[i][:300], len(docs)))
            docs.append(f"{english[i][:80]} . {english[i][:400]}")
    rng.shuffle(examples)
    return examples, docs


def mine_negatives(encoder, examples: list[tuple[str, int]], docs: list[str], k: int, seed: int) -> list[list[int]]:
    """Hard negatives: the dense encoder's nearest documents that are not the positive."""
    rng = random.Random(seed)
    doc_vecs = encoder.encode(docs, batch_size=64).dense
    query_vecs = encoder.encode([q for q, _ in examples], is_query=True, batch_size=64).dense
    out = []
    for qv, (_, pos) in zip(query_vecs, examples):
        top = np.argsort(-(doc_vecs @ qv))[:20]
        cands = [int(d) for d in top if d != pos]
        out.append(rng.sample(cands[:10], k))
    return out


def train_reranker(backbone: ModelPaths, target: ModelPaths, data_dir: Path,
                   cfg: RerankerTrainConfig | None = None) -> dict:
    """Fine-tune, save HF weights and card into ``target``; returns training statistics."""
    import torch
    from tokenizers import Tokenizer
    from transformers import BertForSequenceClassification

    from pipelines.encoders.dense import TextEncoder

    cfg = cfg or RerankerTrainConfig()
    torch.manual_seed(cfg.seed)
    torch.set_num_threads(2)
    examples, docs = training_examples(data_dir, cfg)
    negatives = mine_negatives(TextEncoder(backbone, "int8"), examples, docs, cfg.negatives, cfg.seed)

    model = BertForSequenceClassification.from_pretrained(backbone.hf, num_labels=1)
    frozen = model.config.num_hidden_layers - cfg.trainable_layers
    for p in model.bert.embeddings.parameters():
        p.requires_grad = False
    for layer in model.bert.encoder.layer[:frozen]:
        for p in layer.parameters():
            p.requires_grad = False
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.lr)
    tok = Tokenizer.from_file(str(backbone.tokenizer))
    tok.enable_truncation(cfg.max_length, strategy="longest_first")
    tok.enable_padding(pad_id=1)
    card = backbone.read_card()

    model.train()
    started, step, losses = time.monotonic(), 0, []
    group = cfg.negatives + 1
    steps_per_epoch = len(examples) // cfg.queries_per_step
    bar = tqdm(total=cfg.max_steps, desc="reranker", unit="step")
    while step < cfg.max_steps and (time.monotonic() - started) / 60 < cfg.max_minutes:
        start = (step % steps_per_epoch) * cfg.queries_per_step  # epochs over the examples until the budget ends
        pairs = []
        for (query, pos), negs in zip(examples[start:start + cfg.queries_per_step],
                                      negatives[start:start + cfg.queries_per_step]):
            pairs += [(card.query_prefix + query, card.passage_prefix + docs[d]) for d in [pos, *negs]]
        encs = tok.encode_batch(pairs)
        ids = torch.tensor([e.ids for e in encs])
        mask = torch.tensor([e.attention_mask for e in encs])
        logits = model(input_ids=ids, attention_mask=mask).logits.view(-1, group)
        loss = torch.nn.functional.cross_entropy(logits, torch.zeros(len(logits), dtype=torch.long))
        loss.backward()
        opt.step()
        opt.zero_grad()
        losses.append(float(loss.detach()))
        step += 1
        bar.update(1)
        bar.set_postfix(loss=f"{np.mean(losses[-50:]):.3f}", refresh=False)
    bar.close()
    model.eval()
    if target.hf.exists():
        shutil.rmtree(target.hf)
    model.save_pretrained(target.hf, safe_serialization=True)
    shutil.copy2(backbone.tokenizer, target.tokenizer)
    stats = {"steps": step, "epochs": round(step / max(steps_per_epoch, 1), 2), "minutes": round((time.monotonic() - started) / 60, 1), "examples": len(examples),
             "loss_first50": round(float(np.mean(losses[:50])), 3), "loss_last50": round(float(np.mean(losses[-50:])), 3)}
    target.write_card(ModelCard(name=target.root.name, kind="cross-encoder", source=f"fine-tuned from {card.name}",
                                query_prefix=card.query_prefix, passage_prefix=card.passage_prefix,
                                max_length=cfg.max_length, dims=1, extra={"training": stats}))
    return stats
