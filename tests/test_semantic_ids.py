"""Semantic IDs: the residual quantiser (a pure unit), codes written by the worker, refit through the
reindex path, collapse through the service, near-duplicates."""

from __future__ import annotations

import numpy as np
import pytest

from pipelines.models.semantic_ids import CODE_FIELD, ResidualQuantizer, fit, kmeans, prefix_field


def _clusters(n_groups: int = 12, per_group: int = 6, dims: int = 16, noise: float = 0.05, seed: int = 1):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_groups, dims))
    x = np.repeat(centres, per_group, axis=0) + noise * rng.normal(size=(n_groups * per_group, dims))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x.astype(np.float32), np.repeat(np.arange(n_groups), per_group)


def test_kmeans_finds_separated_clusters_and_is_deterministic():
    x, labels = _clusters()
    c1, a1 = kmeans(x, 12, seed=3)
    c2, a2 = kmeans(x, 12, seed=3)
    assert np.array_equal(a1, a2) and np.allclose(c1, c2)
    # every true cluster maps to exactly one k-means cluster and vice versa
    pairs = {(int(t), int(a)) for t, a in zip(labels, a1)}
    assert len(pairs) == 12 and len({a for _, a in pairs}) == 12


def test_residual_levels_reduce_the_error_and_codes_round_trip():
    x, _ = _clusters(n_groups=20, per_group=10, noise=0.3)
    q = fit(x, levels=3, codes=16, seed=0)
    assert q.levels == 3 and q.sizes == [16, 16, 16] and q.dims == 16
    mse = q.info["mse_per_level"]
    assert mse[0] > mse[1] > mse[2]
    codes = q.encode(x)
    assert codes.shape == (200, 3) and codes.min() >= 0 and codes.max() < 16
    err = ((x - q.decode(codes)) ** 2).sum(1).mean()
    assert err == pytest.approx(mse[2], rel=0.05)  # encoding the training data gives the fitted error
    again = ResidualQuantizer.from_bytes(q.to_bytes())
    assert again.id == q.id and np.array_equal(again.encode(x), codes) and again.info == q.info


def test_fields_are_padded_prefixes():
    x, labels = _clusters()
    q = fit(x, levels=3, codes=256, seed=0, min_points_per_code=4)
    assert q.sizes == [18, 18, 18]  # a small catalog: at least 4 points per code
    doc = q.fields(x[:1])[0]
    parts = doc[CODE_FIELD].split("-")
    assert len(parts) == 3 and all(len(p) == 2 for p in parts)
    assert doc[prefix_field(1)] == parts[0] and doc[prefix_field(2)] == "-".join(parts[:2])
    assert set(doc) == {CODE_FIELD, prefix_field(1), prefix_field(2)}
    # with as many codes as clusters, the first level is the clustering: one code per true cluster
    first = [f[prefix_field(1)] for f in fit(x, levels=2, codes=12).fields(x)]
    assert all(len({first[i] for i in np.flatnonzero(labels == g)}) == 1 for g in range(12))


@pytest.mark.parametrize("kwargs", [{"levels": 0}, {"levels": 9}, {"codes": 1}])
def test_fit_refuses_bad_shapes(kwargs):
    with pytest.raises(ValueError):
        fit(np.ones((10, 4), np.float32), **kwargs)
    q = fit(np.eye(8, dtype=np.float32), levels=1, codes=2, min_points_per_code=1)
    with pytest.raises(ValueError):
        q.encode(np.ones((2, 5), np.float32))
