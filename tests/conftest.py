"""Shared fixtures: the real engine, the real redis broker, real ONNX sessions.

`make test` starts the engine and redis and builds the model first; these
fixtures fail loudly when they are missing instead of faking them.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

# one prefix per pytest run, even when this module is imported twice (as `conftest` by pytest and as
# `tests.conftest` by test modules): the second import must not make a new prefix the cleanup never sees
RUN = os.environ.setdefault("POLYSEEK_TEST_RUN", uuid.uuid4().hex[:8])
os.environ.setdefault("POLYSEEK_BROKER_URL", "redis://127.0.0.1:6379/15")
os.environ.setdefault("POLYSEEK_QUEUE_VISIBILITY_TIMEOUT_S", "8")
os.environ["POLYSEEK_DEAD_LETTER_INDEX"] = f"test-{RUN}-dead-letter"
os.environ["POLYSEEK_STATUS_INDEX"] = f"test-{RUN}-ingest-status"
os.environ["POLYSEEK_QUERY_LOG_INDEX"] = f"test-{RUN}-query-log"
os.environ["POLYSEEK_FEEDBACK_INDEX"] = f"test-{RUN}-feedback"
os.environ["POLYSEEK_SEMANTIC_IDS_INDEX"] = f"test-{RUN}-semantic-ids"
os.environ["POLYSEEK_INGEST_BATCH_SIZE"] = "16"

from bench.runner import WorkerProcess, serve_in_thread  # noqa: E402
from pipelines.settings import Settings, get_settings  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def settings() -> Settings:
    get_settings.cache_clear()
    return get_settings()


@pytest.fixture(scope="session")
def engine(settings):
    from pipelines.engine.client import EngineClient
    from pipelines.engine.launcher import LocalEngine

    status = LocalEngine(settings).status()
    if not status.running:
        pytest.fail(f"no engine at {settings.engine_url}: run `polyseek engine start` (make test does)")
    with EngineClient(settings) as client:
        yield client
        for name in client.request("GET", "/_cat/indices", params={"format": "json"}):
            if name["index"].startswith(f"test-{RUN}"):
                client.delete_index(name["index"])


@pytest.fixture
def index_name(request) -> str:
    return f"test-{RUN}-{request.node.name.lower().replace('[', '-').replace(']', '')[:40]}"


@pytest.fixture(scope="session")
def encoder(settings):
    from pipelines.encoders.dense import open_encoder

    return open_encoder(settings.resolved_model_dir, settings.dense_model, "int8")


@pytest.fixture(scope="session")
def broker(settings):
    from pipelines import local_redis

    if not local_redis.ping(settings):
        pytest.fail("no redis on 127.0.0.1:6379: run `polyseek broker start` (make test does)")
    import redis

    redis.Redis.from_url(settings.broker_url).flushdb()
    return settings.broker_url


@pytest.fixture(scope="session")
def worker(broker, engine):
    log = Path(f"/tmp/polyseek-test-worker-{RUN}.log")
    log.write_text("")
    w = WorkerProcess(log)
    w.start()
    yield w
    w.stop()


@pytest.fixture(scope="session")
def service_url(settings, engine, worker):
    url, stop = serve_in_thread(settings)
    yield url
    stop()


@pytest.fixture(scope="module")
def svc(settings, engine):
    """A query service of the module's own, without an ingest worker (searches and synchronous writes
    need none)."""
    url, stop = serve_in_thread(settings)
    yield url
    stop()


@pytest.fixture(scope="module")
def eng(settings) -> str:
    """The engine's URL, for differential checks (the same request straight to the engine)."""
    return settings.engine_url.rstrip("/")


@pytest.fixture(scope="session")
def es(service_url):
    from elasticsearch import Elasticsearch

    return Elasticsearch(service_url, request_timeout=120)


CORPUS = ["wireless headphones with noise cancelling", "garden hose thirty meters", "ergonomic office chair",
          "stainless steel water bottle", "robot vacuum cleaner", "running shoes for women"] * 20


def build_tiny_bert(folder: Path, *, cross_encoder: bool = False) -> Path:
    """A randomly initialised 2-layer BERT (or BERT cross-encoder) with a WordPiece tokenizer trained here."""
    import torch
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import BertConfig, BertForSequenceClassification, BertModel, PreTrainedTokenizerFast

    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.train_from_iterator(CORPUS, trainers.WordPieceTrainer(
        vocab_size=200, special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]))
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B [SEP]",
        special_tokens=[("[CLS]", tok.token_to_id("[CLS]")), ("[SEP]", tok.token_to_id("[SEP]"))])
    PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="[PAD]", unk_token="[UNK]").save_pretrained(folder)
    torch.manual_seed(0)
    config = BertConfig(vocab_size=tok.get_vocab_size(), hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=64, max_position_embeddings=64, num_labels=1)
    (BertForSequenceClassification if cross_encoder else BertModel)(config).save_pretrained(folder)
    return folder
