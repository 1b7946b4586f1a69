"""``polyseek models export|quantize``: HF folder -> ONNX fp32 -> ONNX int8.

The dense graph takes ``input_ids`` and ``attention_mask`` (dynamic batch and
sequence axes) and returns:

- ``sentence_embedding`` [batch, hidden]: masked mean pooling (or CLS) and L2
  normalisation, as the model card says, inside the graph;
- ``token_weights`` [batch, seq] when a sparse head is attached:
  ``relu(w . h_t + b)`` per input token, zero on padding.  Max over repeated
  tokens and the token-string keys are the runtime's job
  (:mod:`pipelines.encoders.sparse`).

A cross-encoder graph takes the same inputs and returns ``logits`` [batch, 1].
Export needs torch; quantization needs only onnxruntime.
"""

from __future__ import annotations

from pathlib import Path

from pipelines.models.card import ModelCard, ModelPaths, compute_fingerprint

SPARSE_HEAD_FILE = "sparse_head.pt"
OPSET = 17


def _dense_wrapper(model, card: ModelCard, sparse_head):
    import torch

    class DenseForExport(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model
            self.sparse_head = sparse_head

        def forward(self, input_ids, attention_mask):
            hidden = self.model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
            if card.pooling == "cls":
                emb = hidden[:, 0]
            else:
                mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
                emb = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            if card.normalize:
                emb = torch.nn.functional.normalize(emb, p=2.0, dim=-1)
            if self.sparse_head is None:
                return emb
            weights = torch.relu(self.sparse_head(hidden)).squeeze(-1) * attention_mask.to(hidden.dtype)
            return emb, weights

    return DenseForExport().eval()


def _cross_encoder_wrapper(model):
    import torch

    class CrossEncoderForExport(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids, attention_mask):
            return self.model(input_ids=input_ids, attention_mask=attention_mask).logits[:, :1]

    return CrossEncoderForExport().eval()


def load_sparse_head(hf_dir: Path, hidden: int):
    """The trained sparse head saved beside the HF weights, or None."""
    import torch

    path = hf_dir / SPARSE_HEAD_FILE
    if not path.exists():
        return None
    head = torch.nn.Linear(hidden, 1)
    head.load_state_dict(torch.load(path, map_location="cpu"))
    return head.eval()


def load_torch_module(paths: ModelPaths):
    """The exportable torch module for a model folder (also the parity reference)."""
    from transformers import AutoModel, AutoModelForSequenceClassification

    card = paths.read_card()
    if card.kind == "cross-encoder":
        return _cross_encoder_wrapper(AutoModelForSequenceClassification.from_pretrained(paths.hf).eval())
    model = AutoModel.from_pretrained(paths.hf, add_pooling_layer=False).eval() \
        if _is_bert(paths.hf) else AutoModel.from_pretrained(paths.hf).eval()
    head = load_sparse_head(paths.hf, model.config.hidden_size)
    return _dense_wrapper(model, card, head)


def _is_bert(hf_dir: Path) -> bool:
    import json

    return json.loads((hf_dir / "config.json").read_text()).get("model_type") == "bert"


def export_onnx(paths: ModelPaths) -> Path:
    """Export ``paths.hf`` to ``paths.onnx_fp32``; updates the card's sparse flag and records the
    model's fingerprint (:func:`~pipelines.models.card.fingerprint`)."""
    import torch

    card = paths.read_card()
    module = load_torch_module(paths)
    has_sparse = card.kind == "dense" and getattr(module, "sparse_head", None) is not None
    outputs = ["logits"] if card.kind == "cross-encoder" else (
        ["sentence_embedding", "token_weights"] if has_sparse else ["sentence_embedding"])
    dummy = (torch.ones(2, 8, dtype=torch.long), torch.ones(2, 8, dtype=torch.long))
    axes = {"input_ids": {0: "batch", 1: "sequence"}, "attention_mask": {0: "batch", 1: "sequence"}}
    for name in outputs:
        axes[name] = {0: "batch", 1: "sequence"} if name == "token_weights" else {0: "batch"}
    paths.onnx_fp32.parent.mkdir(parents=True, exist_ok=True)
    with torch.no_grad():
        torch.onnx.export(module, dummy, str(paths.onnx_fp32), input_names=["input_ids", "attention_mask"],
                          output_names=outputs, dynamic_axes=axes, opset_version=OPSET, dynamo=False)
    card.has_sparse_head = has_sparse
    card.fingerprint = compute_fingerprint(paths, card)
    paths.write_card(card)
    return paths.onnx_fp32


# MatMuls that write into the residual stream (attention output and FFN output projections): their
# activations carry outliers that per-tensor dynamic quantization crushes; kept fp32 by default.
RESIDUAL_OUTPUT_PATTERNS = ("/attention/output/dense/MatMul", "/output/dense/MatMul")
QUANT_SCHEMES = {
    "int8-residual-fp32": "dynamic int8, per-channel, 7-bit weights; attention/FFN output projections kept fp32",
    "int8-all": "dynamic int8, per-channel, 7-bit weights, every weight MatMul",
}
DEFAULT_QUANT_SCHEME = "int8-residual-fp32"


def residual_output_matmuls(onnx_path: Path) -> list[str]:
    """Names of the MatMul nodes that project back into the residual stream (BERT/XLM-R naming)."""
    import onnx

    graph = onnx.load(str(onnx_path), load_external_data=False).graph
    return [n.name for n in graph.node if n.op_type == "MatMul" and n.name.endswith(RESIDUAL_OUTPUT_PATTERNS)]


def quantize_int8(paths: ModelPaths, per_channel: bool = True, reduce_range: bool = True,
                  scheme: str = DEFAULT_QUANT_SCHEME) -> Path:
    """Dynamic int8 quantization (weights int8, activations quantized at run time).

    ``scheme="int8-residual-fp32"`` (default) keeps the attention and FFN output projections in fp32:
    on Tatoeba the all-int8 model lost 1.4-2.1 points on cmn/jpn/kor/ara against fp32, this one at most
    0.7, for ~26% less throughput (``int8-all`` is the fast variant).  ``reduce_range`` (7-bit weights)
    avoids u8s8 saturation on CPUs without VNNI.  The scheme is recorded in the model card, so
    ``polyseek models build`` re-quantizes a cached model made with another one.
    """
    from onnxruntime.quantization import QuantType, quantize_dynamic

    if scheme not in QUANT_SCHEMES:
        raise ValueError(f"unknown quantization scheme {scheme!r}; choose from {', '.join(QUANT_SCHEMES)}")
    exclude = residual_output_matmuls(paths.onnx_fp32) if scheme == "int8-residual-fp32" else []
    quantize_dynamic(paths.onnx_fp32, paths.onnx_int8, per_channel=per_channel, reduce_range=reduce_range,
                     weight_type=QuantType.QInt8, nodes_to_exclude=exclude)
    card = paths.read_card()
    card.extra["int8"] = {"scheme": scheme, "reduce_range": reduce_range, "fp32_matmuls": len(exclude)}
    paths.write_card(card)
    return paths.onnx_int8
