"""Pure units of the engine transport: the circuit breaker's semantics, retries, raw pass-through.

No engine: a fake clock for the breaker, and a few-line asyncio HTTP server on a free port that
answers (or drops, or stalls) as each test needs.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from pipelines.engine.breaker import CircuitBreaker, State
from pipelines.engine.errors import (ApiError, CircuitOpen, EngineRequestError, EngineTimeout, EngineUnavailable,
                                     from_response)
from pipelines.engine.transport import AsyncEngine, Engine


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


# --- the breaker alone ---------------------------------------------------------------------------------

def test_breaker_opens_after_threshold_failed_requests_and_a_success_resets_the_count():
    breaker = CircuitBreaker(threshold=3, reset_s=10, clock=Clock())
    for _ in range(2):
        assert breaker.acquire()
        breaker.failure()
    breaker.success()
    for _ in range(2):
        breaker.failure()
    assert breaker.state is State.CLOSED and breaker.acquire()
    breaker.failure()
    assert breaker.state is State.OPEN and not breaker.acquire()


def test_half_open_lets_exactly_one_probe_through():
    clock = Clock()
    breaker = CircuitBreaker(threshold=1, reset_s=10, clock=clock)
    breaker.failure()
    clock.now = 9.9
    assert not breaker.acquire()
    clock.now = 10.0
    assert breaker.state is State.HALF_OPEN
    assert [breaker.acquire() for _ in range(5)] == [True, False, False, False, False]
    breaker.success()  # the probe found the engine back
    assert breaker.state is State.CLOSED and all(breaker.acquire() for _ in range(5))


def test_a_failed_probe_reopens_for_another_reset_period():
    clock = Clock()
    breaker = CircuitBreaker(threshold=5, reset_s=10, clock=clock)
    for _ in range(5):
        breaker.failure()
    clock.now = 10
    assert breaker.acquire()
    breaker.failure()  # one failure re-opens, not threshold more
    assert breaker.state is State.OPEN and not breaker.acquire()
    clock.now = 19.9
    assert not breaker.acquire()
    clock.now = 20
    assert breaker.acquire() and not breaker.acquire()


def test_a_probe_that_ends_without_an_answer_frees_the_slot():
    clock = Clock()
    breaker = CircuitBreaker(threshold=1, reset_s=10, clock=clock)
    breaker.failure()
    clock.now = 10
    assert breaker.acquire() and not breaker.acquire()
    breaker.release()  # timed out or cancelled: no verdict
    assert breaker.state is State.HALF_OPEN and breaker.acquire() and not breaker.acquire()


# --- the transport against a fake engine ---------------------------------------------------------------

Handler = Callable[[bytes, asyncio.StreamWriter], Awaitable[None]]


class FakeEngine:
    """Counts connections; ``handler`` gets each request's head+body and answers on the writer."""

    def __init__(self, handler: Handler):
        self.handler = handler
        self.requests: list[bytes] = []

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                           if line.lower().startswith(b"content-length:")), 0)
            body = await reader.readexactly(length) if length else b""
            self.requests.append(head + body)
            await self.handler(head + body, writer)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def __aenter__(self) -> str:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"

    async def __aexit__(self, *exc: object) -> None:
        self._server.close()


def answer(status: int, body: bytes, content_type: str = "application/json", delay: float = 0.0) -> Handler:
    async def handler(request: bytes, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(delay)
        head = (f"HTTP/1.1 {status} X\r\ncontent-type: {content_type}\r\nX-elastic-product: Elasticsearch\r\n"
                f"content-length: {len(body)}\r\nconnection: close\r\n\r\n").encode()
        writer.write(head + (b"" if request.startswith(b"HEAD") else body))
        await writer.drain()
    return handler


async def drop(request: bytes, writer: asyncio.StreamWriter) -> None:
    """Close without answering: a connection error for the client."""


def test_one_failure_per_request_however_many_attempts():
    async def run() -> None:
        fake = FakeEngine(drop)
        async with fake as url:
            engine = AsyncEngine(url, max_retries=2, breaker=CircuitBreaker(threshold=5))
            with pytest.raises(EngineUnavailable) as err:
                await engine.request("GET", "/")
            await engine.close()
        assert len(fake.requests) == 3  # the first attempt and two retries
        assert engine.breaker.failures == 1
        assert (err.value.status, err.value.error_type) == (503, "unavailable_engine_exception")
    asyncio.run(run())


def test_the_circuit_opens_after_threshold_requests_then_refuses_without_a_request():
    async def run() -> None:
        fake = FakeEngine(drop)
        async with fake as url:
            engine = AsyncEngine(url, max_retries=1, breaker=CircuitBreaker(threshold=2, reset_s=60))
            for _ in range(2):
                with pytest.raises(EngineUnavailable):
                    await engine.request("GET", "/")
            sent = len(fake.requests)
            with pytest.raises(CircuitOpen) as err:
                await engine.request("GET", "/")
            await engine.close()
        assert sent == len(fake.requests) == 4
        assert (err.value.status, err.value.error_type) == (503, "circuit_breaking_exception")
    asyncio.run(run())


def test_half_open_sends_one_probe_while_concurrent_callers_are_refused():
    async def run() -> None:
        clock = Clock()
        fake = FakeEngine(answer(200, b'{"ok":true}', delay=0.2))
        async with fake as url:
            engine = AsyncEngine(url, breaker=CircuitBreaker(threshold=1, reset_s=10, clock=clock))
            engine.breaker.failure()
            clock.now = 10
            results = await asyncio.gather(*(engine.request("GET", "/") for _ in range(5)), return_exceptions=True)
            after = await engine.request("GET", "/")
            await engine.close()
        assert sum(not isinstance(r, BaseException) for r in results) == 1
        assert sum(isinstance(r, CircuitOpen) for r in results) == 4
        assert len(fake.requests) == 2 and after.status == 200 and engine.breaker.state is State.CLOSED
    asyncio.run(run())


def test_a_cancelled_probe_frees_the_slot():
    async def run() -> None:
        clock = Clock()
        async with FakeEngine(answer(200, b"{}", delay=5.0)) as url:
            engine = AsyncEngine(url, breaker=CircuitBreaker(threshold=1, reset_s=10, clock=clock))
            engine.breaker.failure()
            clock.now = 10
            probe = asyncio.create_task(engine.request("GET", "/"))
            await asyncio.sleep(0.1)
            assert not engine.breaker.acquire()  # the probe holds the slot
            probe.cancel()  # the client went away
            with pytest.raises(asyncio.CancelledError):
                await probe
            await engine.close()
        assert engine.breaker.state is State.HALF_OPEN and engine.breaker.acquire()
    asyncio.run(run())


def test_a_timeout_is_not_a_breaker_failure_and_a_503_answer_is():
    async def run() -> None:
        async with FakeEngine(answer(200, b"{}", delay=1.0)) as url:
            engine = AsyncEngine(url, timeout_s=0.2, breaker=CircuitBreaker(threshold=1))
            with pytest.raises(EngineTimeout) as err:
                await engine.request("GET", "/")
            await engine.close()
        assert (err.value.status, err.value.error_type) == (504, "timeout_exception")
        assert engine.breaker.failures == 0 and engine.breaker.state is State.CLOSED
        async with FakeEngine(answer(503, b'{"error":{"type":"x","reason":"y"}}')) as url:
            engine = AsyncEngine(url, max_retries=0, breaker=CircuitBreaker(threshold=1))
            resp = await engine.request("GET", "/")  # relayed as the engine answered
            await engine.close()
        assert resp.status == 503 and engine.breaker.state is State.OPEN
    asyncio.run(run())


def test_a_lane_with_its_own_breaker_never_opens_the_circuit_for_the_others():
    async def run() -> None:
        async with FakeEngine(drop) as url:
            engine = AsyncEngine(url, max_retries=0, breaker=CircuitBreaker(threshold=2))
            log_lane = engine.options(breaker=CircuitBreaker(threshold=2))
            for _ in range(5):
                with pytest.raises(EngineUnavailable):
                    await log_lane.request("POST", "/log/_doc", json_body={"q": "x"})
            await engine.close()
        assert log_lane.breaker.state is State.OPEN
        assert engine.breaker.state is State.CLOSED and engine.breaker.failures == 0
    asyncio.run(run())


def test_the_service_query_log_has_its_own_lane(settings):
    from service.state import Polyseek

    async def run() -> None:
        async with FakeEngine(drop) as url:
            ps = Polyseek(settings.model_copy(update={"engine_url": url}))
            for _ in range(8):
                await ps._write_log("products", {"query": None}, 200)  # swallowed: the log never fails a search
            await ps.close()
        assert ps.log_engine.breaker is not ps.engine.breaker
        assert ps.engine.breaker.state is State.CLOSED and ps.engine.breaker.failures == 0
        assert ps.log_engine.breaker.state is State.OPEN
    asyncio.run(run())


def test_bodies_headers_and_statuses_pass_through_raw():
    yaml = b"cluster_name: \"polyseek\"\nstatus: green\n"

    async def run() -> None:
        fake = FakeEngine(answer(200, yaml, content_type="application/yaml"))
        async with fake as url:
            engine = AsyncEngine(url)
            resp = await engine.request("POST", "/_msearch", params=[("format", "yaml"), ("pretty", True)],
                                        content=b'{}\n{"size":0}\n', headers={"x-opaque-id": "abc"})
            head = await engine.request("HEAD", "/products")
            await engine.close()
        assert resp.body == yaml and resp.headers["content-type"] == "application/yaml"
        assert resp.headers["x-elastic-product"] == "Elasticsearch"
        assert head.status == 200 and head.body == b""
        sent = fake.requests[0]
        assert sent.startswith(b"POST /_msearch?format=yaml&pretty=true HTTP/1.1")
        assert b"content-type: application/x-ndjson" in sent.lower() and b"x-opaque-id: abc" in sent.lower()
        assert sent.endswith(b'{}\n{"size":0}\n')
    asyncio.run(run())


def test_the_sync_face_maps_answers_to_the_same_errors():
    def serve(handler: Handler, call: Callable[[Engine], object]) -> object:
        async def run() -> object:
            async with FakeEngine(handler) as url:
                with Engine(url, max_retries=0) as engine:
                    return await asyncio.to_thread(call, engine)
        return asyncio.run(run())

    missing = b'{"error":{"type":"index_not_found_exception","reason":"no such index [x]"},"status":404}'
    with pytest.raises(EngineRequestError) as err:
        serve(answer(404, missing), lambda e: e.json("GET", "/x/_search"))
    assert (err.value.status, err.value.error_type, err.value.reason) == (404, "index_not_found_exception",
                                                                          "no such index [x]")
    assert serve(answer(404, missing), lambda e: e.json("GET", "/x", ok_statuses=(404,)))["status"] == 404
    with pytest.raises(EngineUnavailable) as err:  # 429 is worth a retry, in the worker as in the service
        serve(answer(429, b'{"error":{"type":"es_rejected_execution_exception","reason":"busy"}}'),
              lambda e: e.json("POST", "/_bulk", content=b"{}\n"))
    assert err.value.status == 429
    assert serve(answer(200, b"{}"), lambda e: e.breaker.state) is State.CLOSED


def test_one_tree_one_error_shape():
    err = from_response(400, {"error": {"type": "parsing_exception", "reason": "bad"}})
    assert isinstance(err, EngineRequestError) and isinstance(err, ApiError)
    assert err.to_body() == {"error": {"root_cause": [{"type": "parsing_exception", "reason": "bad"}],
                                       "type": "parsing_exception", "reason": "bad"}, "status": 400}
    assert isinstance(from_response(502, "Bad Gateway"), EngineUnavailable)
    assert from_response(200, {"took": 1}).status == 500  # an answer without what was asked for
