"""Pure units: fusion math and normalizers (no engine needed)."""

import math

import pytest

from service import fusion


def test_rrf_matches_formula():
    a = [("x", 9.0), ("y", 5.0)]
    b = [("y", 0.9), ("z", 0.5)]
    fused = dict(fusion.rrf([a, b], rank_constant=60))
    assert fused["y"] == pytest.approx(1 / 62 + 1 / 61)
    assert fused["x"] == pytest.approx(1 / 61)
    assert fused["z"] == pytest.approx(1 / 62)
    assert [d for d, _ in fusion.rrf([a, b])] == ["y", "x", "z"]


def test_rrf_window_cuts_each_list():
    a = [("x", 3.0), ("y", 2.0), ("z", 1.0)]
    assert [d for d, _ in fusion.rrf([a], window=2)] == ["x", "y"]


def test_rrf_rejects_bad_constant():
    with pytest.raises(ValueError):
        fusion.rrf([[("x", 1.0)]], rank_constant=0)


@pytest.mark.parametrize("method,expected", [
    ("none", [4.0, 2.0, 0.0]),
    ("minmax", [1.0, 0.5, 0.0]),
    ("l2_norm", [4 / math.sqrt(20), 2 / math.sqrt(20), 0.0]),
    ("zscore", [1.224744871, 0.0, -1.224744871]),
])
def test_normalizers(method, expected):
    assert fusion.normalize([4.0, 2.0, 0.0], method) == pytest.approx(expected)


def test_minmax_constant_list():
    assert fusion.normalize([3.0, 3.0], "minmax") == [1.0, 1.0]


def test_linear_weights_and_missing_docs():
    bm25 = [("x", 10.0), ("y", 0.0)]
    knn = [("y", 0.8), ("z", 0.4)]
    fused = dict(fusion.linear([bm25, knn], [2.0, 1.0], ["minmax", "minmax"]))
    assert fused == pytest.approx({"x": 2.0, "y": 1.0, "z": 0.0})


def test_linear_unknown_normalizer():
    with pytest.raises(ValueError):
        fusion.linear([[("x", 1.0)]], [1.0], ["softmax"])


DEFAULTS = {"fields": ["title"], "rank_window_size": 50, "rank_constant": 60, "rerank": False,
            "rerank_field": "title", "rerank_window": 20, "sparse": True, "fusion": "rrf",
            "weights": {"bm25": 0.5, "knn": 1.0, "sparse": 0.0}, "normalizer": "zscore"}


def test_hybrid_shorthand_uses_the_configured_fusion_and_weights():
    from service.retrievers import expand_hybrid, parse

    tree = expand_hybrid({"query": "kabellose Kopfhörer"}, DEFAULTS)
    parse(tree)
    subs = tree["rrf"]["retrievers"]
    assert [next(iter(s["retriever"])) for s in subs] == ["standard", "knn"]  # weight 0: sparse not run
    assert [s["weight"] for s in subs] == [0.5, 1.0]
    linear = expand_hybrid({"query": "x", "fusion": "linear", "weights": {"sparse": 2.0}}, DEFAULTS)
    assert [(s["weight"], s["normalizer"]) for s in linear["linear"]["retrievers"]] == [
        (0.5, "zscore"), (1.0, "zscore"), (2.0, "zscore")]


@pytest.mark.parametrize("spec", [{"query": "x", "fusion": "max"}, {"query": "x", "fusion": "linear", "normalizer": "y"},
                                  {"query": "x", "weights": {"bm25": 0, "knn": 0}}, {"query": " "}])
def test_hybrid_shorthand_rejects_bad_options(spec):
    from service.errors import SearchError
    from service.retrievers import expand_hybrid

    with pytest.raises(SearchError) as err:
        expand_hybrid(spec, DEFAULTS)
    assert err.value.status == 400


def test_agreement_gate_keeps_a_lexical_leaf_only_when_knn_agrees():
    knn = [("right-en", 0.9), ("right-de", 0.89), ("other", 0.5)]
    bm25_agrees = [("right-de", 12.0), ("wrong-de", 11.0)]      # exact words of a product kNN also found
    bm25_words_only = [("wrong-de", 9.0), ("right-de", 2.0)]    # same-language words, wrong product
    assert fusion.gate_open([bm25_agrees, knn], [True, False], 1, k=2) == [True, True]
    assert fusion.gate_open([bm25_words_only, knn], [True, False], 1, k=2) == [False, True]
    assert fusion.gate_open([[], knn], [True, False], 1, k=2) == [False, True]
    assert fusion.gate_open([bm25_words_only, knn], [False, False], 1, k=2) == [True, True]


def test_hybrid_shorthand_builds_the_gate_around_knn():
    from service.retrievers import expand_hybrid, parse

    defaults = {"fields": ["title"], "rank_window_size": 50, "rank_constant": 60, "rerank": False,
                "rerank_field": "title", "rerank_window": 20, "sparse": False, "fusion": "linear",
                "weights": {"bm25": 0.5, "knn": 1.0}, "normalizer": "zscore", "gate_k": 10}
    tree = expand_hybrid({"query": "kabellose Kopfhörer"}, defaults)["linear"]
    assert tree["agreement_gate"] == {"reference": 1, "k": 10}
    assert [e.get("gated", False) for e in tree["retrievers"]] == [True, False]
    parse({"linear": tree}, "retriever")
    assert "agreement_gate" not in expand_hybrid({"query": "x", "gate_k": 0}, defaults)["linear"]


def test_hybrid_shorthand_exact_title_leaf_is_never_gated():
    from service.retrievers import expand_hybrid, parse

    defaults = {"fields": ["title"], "rank_window_size": 50, "rank_constant": 60, "rerank": False,
                "rerank_field": "title", "rerank_window": 20, "sparse": False, "fusion": "linear",
                "weights": {"bm25": 0.5, "knn": 1.0, "exact": 1.0}, "normalizer": "minmax", "gate_k": 10,
                "exact_field": "title.exact"}
    tree = expand_hybrid({"query": "  Kabellose   Kopfhörer "}, defaults)["linear"]
    exact = tree["retrievers"][2]
    assert exact["retriever"] == {"standard": {"query": {"term": {"title.exact": {"value": "Kabellose Kopfhörer"}}}}}
    assert [e.get("gated", False) for e in tree["retrievers"]] == [True, False, False]
    parse({"linear": tree}, "retriever")
    no_field = expand_hybrid({"query": "x"}, {**defaults, "exact_field": None})["linear"]
    assert len(no_field["retrievers"]) == 2


def test_within_reorders_the_reference_and_adds_nothing():
    knn = [("a", 0.9), ("b", 0.8), ("c", 0.7)]
    bm25 = [("c", 12.0), ("x", 11.0), ("a", 1.0)]
    fused = fusion.linear([knn, bm25], [1.0, 2.0], ["minmax", "minmax"], within=0)
    assert [d for d, _ in fused] == ["c", "a", "b"]  # c rises by its words, x (BM25 only) never enters
    assert {d for d, _ in fusion.rrf([knn, bm25], 60, weights=[1.0, 1.0], within=0)} == {"a", "b", "c"}
    assert "x" in {d for d, _ in fusion.linear([knn, bm25], [1.0, 1.0], ["minmax", "minmax"])}


def test_margin_gate_opens_when_knn_backs_the_lexical_top_hit():
    knn = [("right-en", 0.90), ("right-de", 0.89), ("other", 0.50)]  # cosines: translations tie
    same_product = [("right-de", 12.0), ("wrong-de", 11.0)]
    words_only = [("wrong-de", 9.0), ("right-de", 2.0)]
    assert fusion.gate_open([same_product, knn], [True, False], 1, k=0, margin=0.03) == [True, True]
    assert fusion.gate_open([words_only, knn], [True, False], 1, k=0, margin=0.03) == [False, True]
    assert fusion.gate_open([same_product, knn], [True, False], 1, k=0, margin=0.0) == [False, True]
    # engine scores are mapped to cosine first (OpenSearch's innerproduct: 1 + cos)
    engine = [(d, 1.0 + c) for d, c in knn]
    assert fusion.gate_open([same_product, engine], [True, False], 1, k=0, margin=0.03,
                            similarity=lambda s: s - 1.0) == [True, True]
    assert fusion.gate_open([same_product, engine], [True, False], 1, k=0, margin=0.005,
                            similarity=lambda s: s - 1.0) == [False, True]


def test_an_exact_title_hit_anchors_the_gate_and_the_language():
    knn = [("p-en", 0.9), ("p-ja", 0.9), ("p-de", 0.89), ("child-en", 0.8), ("child-de", 0.79)]
    bm25 = [("child-de", 5.0), ("p-de", 4.0)]  # kNN does not back its top hit
    exact = [("p-de", 1.0)]
    lang = {"p-en": "en", "p-ja": "ja", "p-de": "de", "child-en": "en", "child-de": "de"}
    assert fusion.gate_open([bm25, knn, exact], [True, False, False], 1, k=0, margin=0.03) == [False, True, True]
    opened = fusion.gate_open([bm25, knn, exact], [True, False, False], 1, k=0, margin=0.03, anchor=2)
    assert opened == [True, True, True]
    assert fusion.anchor_languages([bm25, knn, exact], opened, [True, False, False], 2, lang) == {"de"}
    # without an exact hit, the language is that of the backed lexical top hit; none when nothing is backed
    # (only when the query's text is in that language: a brand or material matched across languages says nothing)
    backed = [("p-de", 4.0)]
    opened = fusion.gate_open([backed, knn, []], [True, False, False], 1, k=0, margin=0.03, anchor=2)
    assert fusion.anchor_languages([backed, knn, []], opened, [True, False, False], 2, lang, "de") == {"de"}
    assert fusion.anchor_languages([backed, knn, []], opened, [True, False, False], 2, lang, "en") == set()
    assert fusion.anchor_languages([backed, knn, []], opened, [True, False, False], 2, lang) == set()
    opened = fusion.gate_open([bm25, knn, []], [True, False, False], 1, k=0, margin=0.03, anchor=2)
    assert fusion.anchor_languages([bm25, knn, []], opened, [True, False, False], 2, lang) == set()


def test_language_preference_moves_the_shoppers_language_first_and_nothing_without_evidence():
    fused = [("p-en", 2.0), ("p-ja", 2.0), ("p-de", 1.9), ("child-en", 1.2), ("child-de", 1.1)]
    lang = {"p-en": "en", "p-ja": "ja", "p-de": "de", "child-en": "en", "child-de": "de"}
    assert [d for d, _ in fusion.prefer_languages(fused, lang, {"de"}, 1.0)] == \
        ["p-de", "child-de", "p-en", "p-ja", "child-en"]
    assert fusion.prefer_languages(fused, lang, set(), 1.0) == fused
    assert fusion.prefer_languages(fused, lang, {"de"}, 0.0) == fused


@pytest.mark.parametrize("name,score,cosine", [("opensearch", 1.6, 0.6), ("opensearch", 0.625, -0.6),
                                               ("elasticsearch", 0.8, 0.6), ("elasticsearch", 0.2, -0.6)])
def test_knn_scores_map_back_to_cosine(name, score, cosine):
    from pipelines.engine.dialect import dialect_for

    assert dialect_for(name).knn_similarity(score) == pytest.approx(cosine)


def test_hybrid_shorthand_margin_gate_anchor_and_language():
    from service.retrievers import expand_hybrid, parse

    defaults = {"fields": ["title"], "rank_window_size": 50, "rank_constant": 60, "rerank": False,
                "rerank_field": "title", "rerank_window": 20, "sparse": False, "fusion": "linear",
                "weights": {"bm25": 1.0, "knn": 1.0, "exact": 0.5, "language": 1.0}, "normalizer": "minmax",
                "gate_k": 0, "gate_margin": 0.03, "exact_field": "title.exact"}
    tree = expand_hybrid({"query": "Kopfhörer"}, defaults)["linear"]
    assert tree["agreement_gate"] == {"reference": 1, "k": 0, "margin": 0.03, "anchor": 2, "language_boost": 1.0}
    assert [e.get("gated", False) for e in tree["retrievers"]] == [True, False, False]
    parse({"linear": tree}, "retriever")
    assert "agreement_gate" not in expand_hybrid({"query": "x", "gate_margin": False}, defaults)["linear"]
    no_language = expand_hybrid({"query": "x", "weights": {"language": 0}}, defaults)["linear"]
    assert "language_boost" not in no_language["agreement_gate"]
