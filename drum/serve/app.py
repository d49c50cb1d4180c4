"""The ``drum serve`` HTTP app (FastAPI): a ``ServeEngine`` behind the OpenAI API subset
``drum.lvlm.served`` speaks, so a served model is tested against a real server.

Routes: ``POST /v1/chat/completions`` (``drum.serve.protocol``: generate, or score with vLLM's
``prompt_logprobs``), ``GET /v1/models``, ``GET /health``, ``GET /metrics`` (Prometheus text,
``drum.serve.metrics``). Beyond ``max_concurrent_requests``
requests in the server at once a request is answered 429 at once (``Retry-After: 1``), as a
loaded server answers; the requests in the server are batched for the model (``ServeEngine``,
``drum.serve.batching``: at most ``max_batch_size`` a pass, so a batch is never larger than
``max_concurrent_requests``).
With ``api_key`` set, a request without ``Authorization: Bearer <api_key>`` is answered 401.
With ``prompt_logprobs=False`` the app answers as a hosted API does, refusing vLLM's fields
(``VLLM_FIELDS``: a 400 naming the first): generation alone, what a client's generation-only path
and its "score needs prompt log-probabilities" error are tested against.
Errors have OpenAI's shape, ``{"error": {"message", "type", "param", "code"}}``: 400 for a
request the server cannot answer (the message names the field), 404 for another model's name,
500 for a failure of the model (logged with its traceback).
"""

from __future__ import annotations

import json
import logging
import secrets
import tempfile
import time
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.concurrency import run_in_threadpool

from drum.lvlm.context import ContextOverflowError
from drum.serve.engine import ServeEngine
from drum.serve.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from drum.serve.metrics import ServeMetrics
from drum.serve.protocol import ImageStore, RequestError, parse_chat_request
from drum.serve.streaming import MEDIA_TYPE as STREAM_MEDIA_TYPE
from drum.serve.streaming import completion_events

log = logging.getLogger(__name__)

ERROR_TYPES = {
    400: "BadRequestError",
    401: "AuthenticationError",
    404: "NotFoundError",
    429: "RateLimitError",
    500: "InternalServerError",
}


# The request fields vLLM adds to OpenAI's that scoring sends (refused with prompt_logprobs off).
VLLM_FIELDS = ("return_token_ids", "prompt_logprobs", "continue_final_message",
               "add_generation_prompt")  # fmt: skip


class UnknownModel(Exception):
    """A request naming a model this server does not serve (HTTP 404)."""


def error_response(
    status: int, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    body = {"error": {"message": message, "type": ERROR_TYPES[status], "param": None,
                      "code": status}}  # fmt: skip
    return JSONResponse(body, status_code=status, headers=headers)


def create_app(
    engine: ServeEngine,
    max_concurrent_requests: int = 8,
    api_key: str | None = None,
    image_dir: Path | None = None,
    prompt_logprobs: bool = True,
) -> FastAPI:
    """The app serving ``engine`` (module docstring); images sent are kept in ``image_dir``
    (default: a temporary directory that lives as long as the app)."""
    if max_concurrent_requests < 1:
        raise ValueError(f"max_concurrent_requests must be >= 1, got {max_concurrent_requests}")
    app = FastAPI(title="drum serve", docs_url=None, redoc_url=None)
    app.state.engine = engine  # its batching counters, read in-process (tests, benchmarks)
    if image_dir is None:
        app.state.image_tmp = tempfile.TemporaryDirectory(prefix="drum-serve-")
        image_dir = Path(app.state.image_tmp.name)
    images = ImageStore(image_dir)
    created = int(time.time())
    in_flight = 0  # only the event loop's thread reads and writes it

    def authorised(request: Request) -> bool:
        if api_key is None:
            return True
        given = request.headers.get("authorization", "")
        return secrets.compare_digest(given.encode(), f"Bearer {api_key}".encode())

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/v1/models")
    async def models(request: Request) -> Any:
        if not authorised(request):
            return error_response(401, "a valid API key is required (Authorization: Bearer)")
        card = {"id": engine.name, "object": "model", "created": created, "owned_by": "drum"}
        return {"object": "list", "data": [card]}

    def answer(body: Any) -> Any:
        extra = [f for f in VLLM_FIELDS if isinstance(body, dict) and f in body]
        if not prompt_logprobs and extra:
            raise RequestError(f"Unrecognized request argument supplied: {extra[0]}")
        request = parse_chat_request(body, images)
        if request.model is not None and request.model != engine.name:
            raise UnknownModel(f"The model `{request.model}` does not exist (this server "
                              f"serves `{engine.name}`).")  # fmt: skip
        completion = engine.complete(request)
        if request.stream:
            events = completion_events(completion, request.include_usage)
            return StreamingResponse(iter(events), media_type=STREAM_MEDIA_TYPE)
        return completion

    metrics = ServeMetrics(engine, lambda: in_flight)
    app.state.metrics = metrics

    @app.get("/metrics")
    async def prometheus_metrics() -> Response:
        return Response(metrics.render(), media_type=METRICS_CONTENT_TYPE)

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> Any:
        response = await respond(request)
        metrics.count(response.status_code if isinstance(response, Response) else 200)
        return response

    async def respond(request: Request) -> Any:
        nonlocal in_flight
        if not authorised(request):
            return error_response(401, "a valid API key is required (Authorization: Bearer)")
        if in_flight >= max_concurrent_requests:
            return error_response(
                429,
                f"the server has {max_concurrent_requests} requests in flight; retry later",
                headers={"Retry-After": "1"},
            )
        in_flight += 1
        try:
            try:
                body = json.loads(await request.body())
            except ValueError as error:
                return error_response(400, f"the request body is not JSON ({error})")
            return await run_in_threadpool(answer, body)
        except (RequestError, ContextOverflowError) as error:
            return error_response(400, str(error))
        except UnknownModel as error:
            return error_response(404, str(error))
        except Exception as error:  # the model failed: the client may retry a 5xx
            log.exception("drum serve: the model failed on a request")
            return error_response(500, f"the model failed: {type(error).__name__}: {error}")
        finally:
            in_flight -= 1

    return app
