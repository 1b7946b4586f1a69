"""`polyseek models finetune` end to end on a tiny BERT, and the adapter the repository ships."""

from __future__ import annotations

import json

import numpy as np
import pytest

from pipelines.encoders.dense import TextEncoder
from pipelines.models import finetune as ft
from pipelines.models.adapters import SHIPPED, SHIPPED_RERANKERS, adapter_sha256
from pipelines.models.card import model_paths
from pipelines.models.export import export_onnx, quantize_int8
from pipelines.models.importer import import_model
from pipelines.models import verify
from tests.conftest import build_tiny_bert

CATALOG = [
    {"id": f"{kind}-{lang}", "group": kind, "lang": lang, "title": title, "category": cat}
    for kind, cat, titles in [
        ("hp", "electronics > audio", {"en": "wireless headphones", "de": "kabellose kopfhörer"}),
        ("hose", "garden > watering", {"en": "garden hose", "de": "gartenschlauch"}),
        ("chair", "furniture > office", {"en": "ergonomic office chair", "de": "bürostuhl"}),
        ("bottle", "kitchen > drinkware", {"en": "stainless steel water bottle", "de": "trinkflasche"}),
        ("vacuum", "home > cleaning", {"en": "robot vacuum cleaner", "de": "saugroboter"}),
        ("shoe", "sports > running", {"en": "running shoes for women", "de": "laufschuhe damen"}),
    ]
    for lang, title in titles.items()
]


@pytest.fixture(scope="module")
def tiny_base(tmp_path_factory):
    hf = build_tiny_bert(tmp_path_factory.mktemp("tiny-ft-hf"))
    paths = model_paths(tmp_path_factory.mktemp("cache-ft"), "tiny")
    import_model(str(hf), paths, query_prefix="q: ", passage_prefix="p: ")
    return paths


def test_catalog_pairs_cross_language_groups():
    pairs = ft.catalog_pairs(CATALOG, group_key="group")
    assert any(p.query == "kabellose kopfhörer" and "wireless headphones" in p.positive for p in pairs)
    assert all(p.group for p in pairs)
    assert any(p.query == "garden hose" and p.positive == "garden > watering" for p in pairs)  # title -> rest


def test_same_group_is_never_a_negative():
    import torch

    q = torch.nn.functional.normalize(torch.randn(4, 8), dim=-1)
    p = q.clone()
    p[1] = q[0]  # rows 0 and 1 are the same product: without the mask this would be a hard confusion
    masked = ft.contrastive_loss(q, p, ["a", "a", "b", "c"], 0.05)
    unmasked = ft.contrastive_loss(q, p, [None, None, "b", "c"], 0.05)
    assert float(masked) < float(unmasked)


def test_finetune_lora_end_to_end(tiny_base, tmp_path):
    pairs = ft.catalog_pairs(CATALOG, group_key="group") * 4
    jsonl = tmp_path / "pairs.jsonl"
    jsonl.write_text("\n".join(json.dumps({"query": p.query, "positive": p.positive, "group": p.group})
                               for p in pairs[:8]))
    pairs += ft.read_jsonl_pairs(jsonl)
    out = model_paths(tiny_base.root.parent, "tiny-ft")
    adapter = tmp_path / "adapter"
    cfg = ft.FinetuneConfig(method="lora", lora_r=4, lora_alpha=8, lr=5e-3, temperature=0.05, epochs=12,
                            batch_size=12, max_length=32, matryoshka_dims=(16,), seed=1)
    stats = ft.finetune(tiny_base, out, pairs, cfg, data_note="test catalog", adapter_dir=adapter, progress=False)
    assert stats["loss_last"] < stats["loss_first"]  # it learned
    card = out.read_card()
    assert card.extra["finetune"]["steps"] == stats["steps"] > 0 and card.extra["base_model"] == "tiny"

    export_onnx(out)
    quantize_int8(out)
    parity = verify.parity(out, [p.query for p in pairs[:6]])
    assert parity["onnx_fp32"] >= 0.9999  # the exported graph is the fine-tuned torch model

    # the adapter alone, applied to the base weights, gives the same model
    applied = model_paths(tiny_base.root.parent, "tiny-applied")
    info = ft.apply_adapter(tiny_base, applied, adapter)
    assert info["sha256"] == adapter_sha256(adapter)
    export_onnx(applied)
    texts = [p.positive for p in pairs[:5]]
    a = TextEncoder(out, "fp32").encode(texts).dense
    b = TextEncoder(applied, "fp32").encode(texts).dense
    np.testing.assert_allclose(a, b, atol=2e-3)  # the shipped adapter is stored in fp16
    base_vecs = TextEncoder(tiny_base, "fp32").encode(texts).dense if tiny_base.onnx_fp32.exists() else None
    if base_vecs is not None:
        assert not np.allclose(a, base_vecs, atol=1e-3)


@pytest.mark.parametrize("name", sorted(SHIPPED) + sorted(SHIPPED_RERANKERS))
def test_shipped_adapter_is_pinned(name):
    shipped = {**SHIPPED, **SHIPPED_RERANKERS}[name]
    training = json.loads((shipped.adapter_dir / "training.json").read_text())
    config = json.loads((shipped.adapter_dir / "adapter_config.json").read_text())
    assert config["peft_type"] == "LORA" and config["r"] == training["config"]["lora_r"]
    assert "training split" in training["data"]  # never the evaluation split
    assert adapter_sha256(shipped.adapter_dir) == (shipped.adapter_dir / "SHA256").read_text().split()[0]
