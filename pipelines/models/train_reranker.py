"""``polyseek models train-reranker``: a multilingual cross-encoder on top of a dense encoder.

No multilingual cross-encoder is reachable here, so one is trained: the dense encoder's
weights (the adapted ``polyseek-e5-small`` by default) in a ``BertForSequenceClassification``
(one logit), with a LoRA adapter on every attention and FFN projection and the pooler and
classifier trained in full, so that the trained change is small enough to ship like the
encoder's adapter.  Training is listwise over *ranking groups*: a query, its graded relevant
passages and hard negatives the dense encoder ranks high (:func:`mine_groups`); the loss is a
softmax cross-entropy against the graded target distribution (gain ``2**grade - 1``, as nDCG).

Passages are what the service sends the reranker (:func:`pipelines.schema.rerank_text`);
pairs are cut longest-first to ``max_length`` tokens in training and serving.  Exported to
ONNX int8 like the encoder.  Groups come from JSONL (``python -m bench.device_reranker pack``
writes them from the training split of the dev data).

Users with a hub plug in any HF cross-encoder instead:
``polyseek models import BAAI/bge-reranker-v2-m3 --name bge-reranker`` (kind cross-encoder).
"""

from __future__ import annotations

import gzip
import json
import math
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterable

import numpy as np
from tqdm import tqdm

from pipelines.models.card import ModelCard, ModelPaths

HEAD_MODULES = ("pooler", "classifier")  # trained in full and shipped with the LoRA adapter


@dataclass(frozen=True)
class RankGroup:
    """One query with passages and their grades (0: not relevant); at least one grade is positive."""

    query: str
    passages: tuple[str, ...]
    grades: tuple[int, ...]
    source: str = "jsonl"  # groups of one source share batches (their lengths differ)


@dataclass
class RerankerTrainConfig:
    """Hyper-parameters of one reranker training run."""

    lora_r: int = 32
    lora_alpha: int = 64
    lr: float = 3e-4
    epochs: float = 1.0
    queries_per_step: int = 32
    group_size: int = 8  # passages per query in a step: its relevant ones first, then hard negatives
    max_length: int = 128  # pairs are truncated longest-first to this in training and serving
    warmup_fraction: float = 0.05
    time_budget_s: float | None = None
    max_steps: int | None = None
    bf16: bool = True  # autocast on a GPU; the CPU always runs fp32
    device: str = "auto"
    seed: int = 11


def write_groups(groups: Iterable[RankGroup], path: Path) -> int:
    """Write ranking groups as JSONL (gzip when the name ends in ``.gz``); returns how many."""
    n = 0
    with (gzip.open if Path(path).suffix == ".gz" else open)(path, "wt", encoding="utf-8") as fh:
        for g in groups:
            fh.write(json.dumps(asdict(g), ensure_ascii=False) + "\n")
            n += 1
    return n


def read_groups(path: Path) -> list[RankGroup]:
    """Ranking groups written by :func:`write_groups`."""
    with (gzip.open if Path(path).suffix == ".gz" else open)(path, "rt", encoding="utf-8") as fh:
        rows = [json.loads(line) for line in fh if line.strip()]
    return [RankGroup(r["query"], tuple(r["passages"]), tuple(r["grades"]), r.get("source", "jsonl")) for r in rows]


def nearest(query_vecs, passage_vecs, k: int, chunk: int = 4096) -> list[list[int]]:
    """Indices of the ``k`` passages nearest each query (cosine of normalised torch vectors), best first."""
    import torch

    k = min(k, passage_vecs.shape[0])
    out: list[list[int]] = []
    for start in range(0, query_vecs.shape[0], chunk):
        sims = query_vecs[start:start + chunk] @ passage_vecs.T
        out += torch.topk(sims, k, dim=1).indices.cpu().tolist()
    return out


def mine_groups(queries: list[str], passages: list[str], ranked: list[list[int]], qrels: list[dict[int, int]], *,
                exclude: list[int | None] | None = None, depth: int = 30, group_size: int = 8,
                source: str = "jsonl", seed: int = 11) -> list[RankGroup]:
    """Ranking groups whose negatives are the dense encoder's hard negatives.

    For query ``i`` (relevant passages ``qrels[i]``: passage index -> grade; ``ranked[i]``: the
    encoder's nearest passages, best first, from :func:`nearest`), the group holds every passage of
    the highest grade, one of a lower positive grade (if any) and, to ``group_size``, passages of
    the encoder's top ``depth`` that are not relevant, sampled without replacement, nearest first.
    ``exclude[i]`` (the query's own text as a passage) is never a candidate.
    """
    rng = random.Random(seed)
    groups = []
    for i, query in enumerate(queries):
        rel = {d: g for d, g in qrels[i].items() if g > 0}
        if not rel:
            continue
        top = max(rel.values())
        chosen = [d for d, g in rel.items() if g == top][:group_size - 1]
        lower = [d for d, g in rel.items() if g < top]
        if lower:
            chosen.append(rng.choice(lower))
        skip = set(rel) | {exclude[i] if exclude else None}
        hard = [d for d in ranked[i] if d not in skip][:depth]
        negatives = sorted(rng.sample(hard, min(group_size - len(chosen), len(hard))), key=hard.index)
        members = chosen + negatives
        groups.append(RankGroup(query, tuple(passages[d] for d in members),
                                tuple(rel.get(d, 0) for d in members), source))
    return groups


def listwise_loss(logits, grades):
    """Softmax cross-entropy of ``logits`` [queries, group] against targets proportional to ``2**grade - 1``."""
    import torch

    gains = torch.pow(2.0, grades.float()) - 1.0
    target = gains / gains.sum(-1, keepdim=True).clamp(min=1e-9)
    return -(target * torch.log_softmax(logits.float(), dim=-1)).sum(-1).mean()


def pair_logits(model, tokenizer, card: ModelCard, query: str | list[str], passages: list[str], pad_id: int):
    """The cross-encoder's logits of (query, passage) pairs, as the runtime forms them (prefixes, truncation)."""
    import torch

    from pipelines.encoders.dense import pad_batch

    queries = [query] * len(passages) if isinstance(query, str) else query
    encs = tokenizer.encode_batch([(card.query_prefix + q, card.passage_prefix + p) for q, p in zip(queries, passages)])
    ids, mask = pad_batch(encs, pad_id)
    device = next(model.parameters()).device
    return model(input_ids=torch.from_numpy(ids).to(device), attention_mask=torch.from_numpy(mask).to(device)).logits[:, 0]


def _batches(groups: list[RankGroup], size: int, seed: int) -> list[list[RankGroup]]:
    """Shuffled batches of ``size`` groups, one source per batch."""
    rng = random.Random(seed)
    by_source: dict[str, list[RankGroup]] = {}
    for g in groups:
        by_source.setdefault(g.source, []).append(g)
    out = []
    for items in by_source.values():
        rng.shuffle(items)
        out += [items[i:i + size] for i in range(0, len(items), size)]
    rng.shuffle(out)
    return out


def _padded(group: RankGroup, size: int) -> tuple[list[str], list[int]]:
    """A group's passages and grades cut or padded (repeating its last passage) to ``size``."""
    passages, grades = list(group.passages[:size]), list(group.grades[:size])
    while len(passages) < size:
        passages.append(passages[-1])
        grades.append(grades[-1])
    return passages, grades


def open_tokenizer(paths: ModelPaths, max_length: int):
    """The model's tokenizer cutting pairs longest-first at ``max_length``, and its pad id."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(paths.tokenizer))
    tok.enable_truncation(max_length, strategy="longest_first")
    return tok, tok.token_to_id("<pad>") or 0


def train_reranker(backbone: ModelPaths, target: ModelPaths, groups: list[RankGroup],
                   cfg: RerankerTrainConfig | None = None, *, adapter_dir: Path | None = None,
                   data_note: str = "", progress: bool = True):
    """Train a LoRA cross-encoder on ``groups`` from ``backbone``; write the merged model and its card to
    ``target`` (and the adapter with its head to ``adapter_dir``).  Returns ``(stats, model, tokenizer)``,
    the model in eval mode on the training device (to score with :func:`pair_logits`)."""
    import torch
    from transformers import AutoModelForSequenceClassification

    from pipelines.models.finetune import lora_model

    cfg = cfg or RerankerTrainConfig()
    if not groups:
        raise ValueError("no ranking groups")
    torch.manual_seed(cfg.seed)
    device = ("cuda" if torch.cuda.is_available() else "cpu") if cfg.device == "auto" else cfg.device
    torch.set_float32_matmul_precision("high")
    card = backbone.read_card()
    model = AutoModelForSequenceClassification.from_pretrained(backbone.hf, num_labels=1)
    model = lora_model(model, cfg.lora_r, cfg.lora_alpha, modules_to_save=HEAD_MODULES).to(device)
    model.train()
    tok, pad_id = open_tokenizer(backbone, cfg.max_length)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=0.01)
    epoch = _batches(groups, cfg.queries_per_step, cfg.seed)
    planned = max(1, math.ceil(len(epoch) * cfg.epochs))
    if cfg.max_steps:
        planned = min(planned, cfg.max_steps)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=cfg.bf16 and device.startswith("cuda"))
    started, losses = time.monotonic(), []
    bar = tqdm(range(planned), desc="reranker", unit="step", disable=not progress)
    for step in bar:
        elapsed = time.monotonic() - started
        if cfg.time_budget_s and elapsed > cfg.time_budget_s:
            break
        done = max(step / planned, elapsed / cfg.time_budget_s if cfg.time_budget_s else 0.0)
        scale = done / cfg.warmup_fraction if done < cfg.warmup_fraction else (1 - done) / (1 - cfg.warmup_fraction)
        for g in opt.param_groups:
            g["lr"] = cfg.lr * max(scale, 0.02)
        batch = epoch[step % len(epoch)]
        queries, passages, grades = [], [], []
        for group in batch:
            p, g = _padded(group, cfg.group_size)
            queries += [group.query] * len(p)
            passages += p
            grades.append(g)
        with autocast:
            logits = pair_logits(model, tok, card, queries, passages, pad_id).view(len(batch), cfg.group_size)
        loss = listwise_loss(logits, torch.tensor(grades, device=logits.device))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        losses.append(float(loss.detach()))
        bar.set_postfix(loss=f"{np.mean(losses[-50:]):.3f}", refresh=False)
    bar.close()
    model.eval()
    stats = {"groups": len(groups), "steps": len(losses), "planned_steps": planned,
             "epochs": round(len(losses) / len(epoch), 2), "seconds": round(time.monotonic() - started, 1),
             "device": torch.cuda.get_device_name(device) if device.startswith("cuda") else "cpu", "data": data_note,
             "loss_first50": round(float(np.mean(losses[:50])), 4), "loss_last50": round(float(np.mean(losses[-50:])), 4),
             "config": {k: v for k, v in asdict(cfg).items() if k != "device"}}
    if adapter_dir is not None:
        from pipelines.models.finetune import save_adapter

        save_adapter(model, adapter_dir, stats, card.name)
    merged = model.merge_and_unload()
    save_cross_encoder(merged, backbone, target, cfg.max_length, {"training": stats})
    return stats, merged.to(device), tok


def save_cross_encoder(model, backbone: ModelPaths, target: ModelPaths, max_length: int, extra: dict) -> None:
    """Write a merged cross-encoder (HF weights, the backbone's tokenizer) and its card to ``target``."""
    import shutil

    card = backbone.read_card()
    if target.hf.exists():
        shutil.rmtree(target.hf)
    for stale in (target.onnx_fp32, target.onnx_int8):
        stale.unlink(missing_ok=True)
    model.to("cpu").save_pretrained(target.hf, safe_serialization=True)
    shutil.copy2(backbone.tokenizer, target.tokenizer)
    target.write_card(ModelCard(name=target.root.name, kind="cross-encoder", source=f"{card.name} + reranker LoRA",
                                query_prefix=card.query_prefix, passage_prefix=card.passage_prefix,
                                max_length=max_length, dims=1, extra={**extra, "base_model": card.name}))


def apply_reranker_adapter(backbone: ModelPaths, target: ModelPaths, adapter_dir: Path) -> dict[str, Any]:
    """Merge a trained reranker adapter (LoRA + head) into ``backbone`` and write the cross-encoder to ``target``."""
    from peft import PeftModel
    from transformers import AutoModelForSequenceClassification

    from pipelines.models.adapters import adapter_sha256

    adapter_dir = Path(adapter_dir)
    training = json.loads((adapter_dir / "training.json").read_text()) if (adapter_dir / "training.json").exists() else {}
    model = AutoModelForSequenceClassification.from_pretrained(backbone.hf, num_labels=1)
    merged = PeftModel.from_pretrained(model, str(adapter_dir)).merge_and_unload().eval()
    info = {"path": adapter_dir.name, "sha256": adapter_sha256(adapter_dir),
            "base_adapter_sha256": backbone.read_card().extra.get("adapter", {}).get("sha256"), **training}
    max_length = int(training.get("config", {}).get("max_length", RerankerTrainConfig.max_length))
    save_cross_encoder(merged, backbone, target, max_length, {"adapter": info})
    return info
