"""The Polyseek query service: the Elasticsearch REST API in front of the engine.

``create_app()`` builds the ASGI app; ``polyseek serve`` runs it with uvicorn. It assembles
:mod:`service.routes` (the endpoints: searches with retrievers or the hybrid shorthand run here; writes
are embedded here and sent to the engine in order, or queued on request: :mod:`service.writes`;
everything else passes through to the engine), :mod:`service.security` (the guards every route but the
health route sits behind) and :mod:`service.state` (the process-wide :class:`~service.state.Polyseek`,
made by the lifespan), and answers as Elasticsearch does: every error in its error shape (the exception
handlers here) and the product header on every answer.
"""

from __future__ import annotations

from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pipelines.engine.errors import ApiError
from pipelines.settings import Settings, get_settings
from service.errors import error_response
from service.routes import routes
from service.state import Polyseek

PRODUCT_HEADERS = {"X-Elastic-Product": "Elasticsearch"}


async def api_error(request: Request, exc: ApiError) -> Response:
    """Every :class:`ApiError` raised while answering (the service's own, the engine's) in Elasticsearch's
    error shape, with its status and headers."""
    return error_response(exc.status, exc.error_type, exc.reason, headers=exc.extra.get("header"))


async def http_error(request: Request, exc: HTTPException) -> Response:
    """Starlette's own refusals (a method no route takes: 405) as Elasticsearch answers them."""
    if exc.status_code == 405:
        allowed = (exc.headers or {}).get("Allow", "")
        return JSONResponse({"error": f"Incorrect HTTP method for uri [{request.url.path}] and method "
                                      f"[{request.method}], allowed: [{allowed}]", "status": 405},
                            status_code=405, headers=exc.headers)
    return error_response(exc.status_code, "status_exception", exc.detail, headers=exc.headers)


async def server_error(request: Request, exc: Exception) -> Response:
    """Anything else: an Elasticsearch-shaped 500. Starlette's ServerErrorMiddleware sends it, outside every
    middleware (so it carries the product header itself), then raises the error again for the server's log."""
    return error_response(500, "exception", f"{type(exc).__name__}: {exc}", headers=PRODUCT_HEADERS)


class ProductHeader:
    """ASGI middleware: every answer carries ``X-Elastic-Product: Elasticsearch`` (the stock clients check it)."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def send_with_header(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message).update(PRODUCT_HEADERS)
            await send(message)

        await self.app(scope, receive, send_with_header)


def create_app(settings: Settings | None = None) -> Starlette:
    """The query service as an ASGI app, over ``settings`` (default: the process's)."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: Starlette):
        app.state.polyseek = Polyseek(settings)
        await app.state.polyseek.ensure_log_index()
        yield
        await app.state.polyseek.close()

    return Starlette(routes=routes(settings), lifespan=lifespan, middleware=[Middleware(ProductHeader)],
                     exception_handlers={ApiError: api_error, HTTPException: http_error, Exception: server_error})
