"""``polyseek models finetune``: adapt a dense encoder to a catalog with contrastive learning.

Recipe (measured in issue 11): symmetric InfoNCE with in-batch negatives at a low
temperature, batches that mix languages so that a same-language wrong product is a
negative (this is what removes the language bias), optional mined hard negatives and an
optional Matryoshka loss.  The trained change is a LoRA adapter (``peft``) by default,
or the top-N layers, or the whole encoder.

Pairs come from JSONL files, from a catalog alone (:func:`catalog_pairs`) or from the
training split of the shared dev data (:func:`pipelines.models.training_data.shared_training_pairs`).
The result is a new model in the model cache (merged HF weights + card), which
``polyseek models build`` exports to ONNX and int8 like any other.
"""

from __future__ import annotations

import json
import math
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Literal

from tqdm import tqdm

from pipelines.models.card import ModelCard, ModelPaths
from pipelines.schema import ID_FIELD, LANG_FIELD, ProductFields, embedding_text, product_fields

Method = Literal["lora", "top", "full"]
LORA_TARGETS = ("query", "key", "value", "attention.output.dense", "intermediate.dense", "output.dense")


@dataclass(frozen=True)
class Pair:
    """One training example: a query, its positive passage, optionally a hard negative.

    ``group`` names what the positive *is* (a product id, a category id): two pairs of the
    same group are never each other's negatives.
    """

    query: str
    positive: str
    negative: str | None = None
    group: str | None = None
    lang: str | None = None
    source: str = "jsonl"  # pairs of one source share batches (their lengths differ)


@dataclass
class FinetuneConfig:
    """Hyper-parameters of one fine-tuning run (defaults: the recipe of issue 11, cut for CPU)."""

    method: Method = "lora"
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.0
    top_layers: int = 4
    lr: float = 3e-4
    temperature: float = 0.02
    epochs: float = 1.0
    batch_size: int = 128
    batch_sizes: dict[str, int] = field(default_factory=dict)  # per source, e.g. {"ikea": 64}
    max_length: int = 64
    max_lengths: dict[str, int] = field(default_factory=dict)  # per source, e.g. {"ikea": 128}
    warmup_fraction: float = 0.05
    matryoshka_dims: tuple[int, ...] = ()
    gradient_checkpointing: bool = False
    time_budget_s: float | None = None
    threads: int | None = None
    device: str = "auto"  # "auto": CUDA when torch sees a GPU, else the CPU
    seed: int = 7


def read_jsonl_pairs(path: Path) -> list[Pair]:
    """Pairs from JSONL: ``query`` (or ``anchor``), ``positive``, optional ``negative``, ``lang``, ``group``, ``source``."""
    import gzip

    path = Path(path)
    pairs = []
    with (gzip.open if path.suffix == ".gz" else open)(path, "rt", encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            row = json.loads(line)
            query = row.get("query", row.get("anchor"))
            if not query or not row.get("positive"):
                raise ValueError(f"{path}:{n}: a pair needs 'query' (or 'anchor') and 'positive'")
            pairs.append(Pair(query, row["positive"], row.get("negative"), row.get("group"), row.get("lang"),
                              row.get("source") or "jsonl"))
    return pairs


def write_jsonl_pairs(pairs: Iterable[Pair], path: Path) -> int:
    """Write ``pairs`` in the format :func:`read_jsonl_pairs` reads (``gzip`` when the name ends in ``.gz``)."""
    import gzip

    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    n = 0
    with opener(path, "wt", encoding="utf-8") as fh:
        for p in pairs:
            row = {k: v for k, v in asdict(p).items() if v is not None}
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
            n += 1
    return n


def passage_text(doc: dict[str, Any], fields: ProductFields | None = None) -> str:
    """The text a worker embeds for a product: training passages must look like indexed ones.
    ``fields``: the names ``doc`` uses (default: the catalog's, ``settings.product_fields``)."""
    return embedding_text(doc, fields)


def catalog_pairs(docs: Iterable[dict[str, Any]], *, group_key: str | None = None, seed: int = 7) -> list[Pair]:
    """Pairs a catalog implies on its own, without any query log.

    - title -> the rest of the product (category path, description);
    - with ``group_key`` (the same product under several ids, e.g. one per language):
      each version's title -> every other version's full text.
    """
    rng = random.Random(seed)
    docs = list(docs)
    title_field = product_fields().title
    pairs = []
    groups: dict[str, list[dict]] = {}
    for doc in docs:
        title = doc.get(title_field)
        rest = passage_text({k: v for k, v in doc.items() if k != title_field})
        if title and rest:
            pairs.append(Pair(str(title), rest, group=str(doc.get(ID_FIELD)), lang=doc.get(LANG_FIELD),
                              source="catalog"))
        if group_key and doc.get(group_key) is not None:
            groups.setdefault(str(doc[group_key]), []).append(doc)
    for key, members in groups.items():
        for a in members:
            for b in members:
                if a is not b and a.get(title_field):
                    pairs.append(Pair(str(a[title_field]), passage_text(b), group=key, lang=a.get(LANG_FIELD),
                                      source="catalog"))
    rng.shuffle(pairs)
    return pairs


def make_batches(pairs: list[Pair], cfg: FinetuneConfig) -> list[list[Pair]]:
    """Shuffled batches, one source per batch, languages mixed inside each batch."""
    rng = random.Random(cfg.seed)
    by_source: dict[str, list[Pair]] = {}
    for p in pairs:
        by_source.setdefault(p.source, []).append(p)
    batches = []
    for source, items in by_source.items():
        rng.shuffle(items)
        size = cfg.batch_sizes.get(source, cfg.batch_size)
        batches += [items[i:i + size] for i in range(0, len(items), size) if len(items[i:i + size]) > 1]
    rng.shuffle(batches)
    return batches


def lora_model(model, r: int, alpha: int, dropout: float = 0.0, modules_to_save: tuple[str, ...] = ()):
    """``model`` wrapped by ``peft`` with LoRA on every attention and FFN projection (:data:`LORA_TARGETS`);
    ``modules_to_save`` (e.g. a classification head) are trained in full and saved with the adapter."""
    from peft import LoraConfig, get_peft_model

    targets = [name for name, module in model.named_modules()
               if name.endswith(LORA_TARGETS) and module.__class__.__name__ == "Linear"
               and not any(part in name.split(".") for part in modules_to_save)]
    lora = LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=targets, bias="none",
                      modules_to_save=list(modules_to_save) or None)
    return get_peft_model(model, lora)


def _trainable(model, cfg: FinetuneConfig):
    """The model with only what ``cfg.method`` trains left trainable."""
    if cfg.method == "lora":
        return lora_model(model, cfg.lora_r, cfg.lora_alpha, cfg.lora_dropout)
    if cfg.method == "top":
        layers = model.encoder.layer
        for p in model.parameters():
            p.requires_grad_(False)
        for layer in layers[len(layers) - cfg.top_layers:]:
            for p in layer.parameters():
                p.requires_grad_(True)
    return model


def _embed(model, tokenizer, texts: list[str], max_length: int):
    """Mean-pooled hidden states of ``texts`` cut to ``max_length`` tokens (special tokens kept), with grad."""
    import torch

    from pipelines.encoders.dense import pad_batch

    tokenizer.enable_truncation(max_length)
    ids, mask = pad_batch(tokenizer.encode_batch(texts), getattr(model.config, "pad_token_id", None) or 0)
    ids, mask = torch.from_numpy(ids).to(model.device), torch.from_numpy(mask).to(model.device)
    hidden = model(input_ids=ids, attention_mask=mask).last_hidden_state
    m = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * m).sum(1) / m.sum(1).clamp(min=1.0)


def embed_texts(model, tokenizer, texts: list[str], max_length: int, batch_size: int = 256):
    """L2-normalised mean-pooled embeddings of ``texts`` (prefixes included by the caller), no grad, returned on the CPU."""
    import torch
    import torch.nn.functional as F

    out = []
    with torch.no_grad():
        for start in range(0, len(texts), batch_size):
            out.append(F.normalize(_embed(model, tokenizer, texts[start:start + batch_size], max_length).float(),
                                   dim=-1).cpu())
    return torch.cat(out) if out else torch.zeros((0, model.config.hidden_size))


def contrastive_loss(q, p, groups: list[str | None], temperature: float, dims: tuple[int, ...] = ()):
    """Symmetric InfoNCE with in-batch negatives; ``p`` may hold extra hard-negative rows after the positives.

    Pairs of the same group are masked out as negatives; ``dims`` adds the same loss on
    truncated, re-normalised vectors (Matryoshka).
    """
    import torch
    import torch.nn.functional as F

    n = q.shape[0]
    ids = {g: k for k, g in enumerate(dict.fromkeys(g for g in groups if g is not None))}
    group_id = torch.tensor([ids[g] if g is not None else -1 - i for i, g in enumerate(groups)], device=q.device)
    same = torch.zeros((n, p.shape[0]), dtype=torch.bool, device=q.device)
    same[:, :n] = (group_id[:, None] == group_id[None, :]) & ~torch.eye(n, dtype=torch.bool, device=q.device)
    target = torch.arange(n, device=q.device)
    total = 0.0
    for d in (q.shape[1], *[d for d in dims if d < q.shape[1]]):
        qd, pd = F.normalize(q[:, :d], dim=-1), F.normalize(p[:, :d], dim=-1)
        logits = (qd @ pd.T / temperature).masked_fill(same, float("-inf"))
        loss = F.cross_entropy(logits, target)
        back = (pd[:n] @ qd.T / temperature).masked_fill(same[:, :n].T, float("-inf"))
        total = total + (loss + F.cross_entropy(back, target)) / 2
    return total


def finetune(base: ModelPaths, out: ModelPaths, pairs: list[Pair], cfg: FinetuneConfig | None = None, *,
             data_note: str = "", adapter_dir: Path | None = None, progress: bool = True) -> dict[str, Any]:
    """Train on ``pairs`` from the model at ``base``; write the merged model (HF + card) to ``out``.

    With ``method="lora"`` the adapter alone is also saved to ``adapter_dir`` (if given)
    in ``peft``'s format, so that it can be shipped and applied to the base weights.
    Returns the training statistics that go into the card.
    """
    import torch
    from tokenizers import Tokenizer
    from transformers import AutoModel

    cfg = cfg or FinetuneConfig()
    if not pairs:
        raise ValueError("no training pairs")
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    card = base.read_card()
    device = ("cuda" if torch.cuda.is_available() else "cpu") if cfg.device == "auto" else cfg.device
    model = AutoModel.from_pretrained(base.hf, add_pooling_layer=False).to(device)
    torch.set_float32_matmul_precision("high")  # TF32 on a GPU that has it; no change on the CPU
    if cfg.gradient_checkpointing:
        model.gradient_checkpointing_enable()
    model = _trainable(model, cfg)
    model.train()
    tokenizer = Tokenizer.from_file(str(base.tokenizer))
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=0.01)

    epoch_batches = make_batches(pairs, cfg)
    planned = max(1, int(math.ceil(len(epoch_batches) * cfg.epochs)))
    schedule = [epoch_batches[i % len(epoch_batches)] for i in range(planned)]
    started = time.monotonic()
    losses: list[float] = []
    bar = tqdm(schedule, desc=f"finetune ({cfg.method})", unit="batch", disable=not progress)
    for step, batch in enumerate(bar):
        elapsed = time.monotonic() - started
        if cfg.time_budget_s and elapsed > cfg.time_budget_s:
            break
        done = max(step / planned, elapsed / cfg.time_budget_s if cfg.time_budget_s else 0.0)
        warm = cfg.warmup_fraction
        scale = done / warm if done < warm else max(0.0, (1 - done) / (1 - warm))
        for g in opt.param_groups:
            g["lr"] = cfg.lr * max(scale, 0.02)
        source = batch[0].source
        length = cfg.max_lengths.get(source, cfg.max_length)
        q = _embed(model, tokenizer, [card.query_prefix + p.query for p in batch], length)
        passages = [card.passage_prefix + p.positive for p in batch]
        passages += [card.passage_prefix + p.negative for p in batch if p.negative]
        d = _embed(model, tokenizer, passages, length)
        loss = contrastive_loss(q, d, [p.group for p in batch], cfg.temperature, cfg.matryoshka_dims)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        losses.append(float(loss.detach()))
        bar.set_postfix(loss=f"{sum(losses[-20:]) / len(losses[-20:]):.3f}", refresh=False)
    bar.close()

    stats = {"method": cfg.method, "pairs": len(pairs), "steps": len(losses), "planned_steps": planned,
             "seconds": round(time.monotonic() - started, 1), "device": _device_name(device), "data": data_note,
             "loss_first": round(sum(losses[:10]) / max(len(losses[:10]), 1), 4),
             "loss_last": round(sum(losses[-10:]) / max(len(losses[-10:]), 1), 4),
             "config": {k: v for k, v in asdict(cfg).items() if k not in ("threads", "device")}}
    model.eval()
    if cfg.method == "lora":
        if adapter_dir is not None:
            hub_id = card.source if "/" in card.source and " " not in card.source else card.name
            save_adapter(model, adapter_dir, stats, hub_id)
        model = model.merge_and_unload()
    save_model(model.to("cpu"), base, out, card, {"finetune": stats})
    return stats


def _device_name(device: str) -> str:
    import torch

    return torch.cuda.get_device_name(device) if device.startswith("cuda") else "cpu"


def save_adapter(peft_model, adapter_dir: Path, stats: dict[str, Any], base_name: str) -> None:
    """The LoRA adapter alone, in fp16 (``adapter_model.safetensors`` + ``adapter_config.json``)."""
    import torch

    adapter_dir = Path(adapter_dir)
    adapter_dir.mkdir(parents=True, exist_ok=True)
    peft_model.save_pretrained(adapter_dir)
    from safetensors.torch import load_file, save_file

    config_file = adapter_dir / "adapter_config.json"  # name the base, not this machine's cache path
    config = json.loads(config_file.read_text())
    config["base_model_name_or_path"] = base_name
    config_file.write_text(json.dumps(config, indent=2) + "\n")
    (adapter_dir / "README.md").unlink(missing_ok=True)  # peft's hub template; training.json is the card

    weights = adapter_dir / "adapter_model.safetensors"
    save_file({k: v.to(torch.float16) for k, v in load_file(weights).items()}, weights)
    (adapter_dir / "training.json").write_text(json.dumps(stats, indent=2, ensure_ascii=False) + "\n")


def save_model(model, base: ModelPaths, out: ModelPaths, card: ModelCard, extra: dict[str, Any]) -> None:
    """Write merged HF weights, the base tokenizer and a card that says where they came from."""
    import shutil

    out.hf.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(out.root / "cache", ignore_errors=True)  # features computed from the old weights
    model.save_pretrained(out.hf, safe_serialization=True)
    if out.tokenizer != base.tokenizer:
        shutil.copy2(base.tokenizer, out.tokenizer)
    new = ModelCard(**{**asdict(card), "name": out.root.name, "has_sparse_head": False, "fingerprint": "",
                       "extra": {**extra, "base_model": card.name, "base_source": card.source}})
    new.source = f"{card.source} + {next(iter(extra))}"
    out.write_card(new)


def apply_adapter(base: ModelPaths, out: ModelPaths, adapter_dir: Path) -> dict[str, Any]:
    """Merge a shipped LoRA adapter into ``base``'s weights and write the result to ``out``."""
    from peft import PeftModel
    from transformers import AutoModel

    from pipelines.models.adapters import adapter_sha256

    card = base.read_card()
    model = AutoModel.from_pretrained(base.hf, add_pooling_layer=False)
    merged = PeftModel.from_pretrained(model, str(adapter_dir)).merge_and_unload()
    training = json.loads((Path(adapter_dir) / "training.json").read_text()) if (
        Path(adapter_dir) / "training.json").exists() else {}
    info = {"adapter": {"path": Path(adapter_dir).name, "sha256": adapter_sha256(adapter_dir), **training}}
    save_model(merged, base, out, card, info)
    return info["adapter"]
