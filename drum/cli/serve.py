"""``drum serve``: an in-process LVLM (any ``HFLVLM`` checkpoint, the built-in LVLM included,
a VPG-C adapter on top with ``--adapter``) over the OpenAI chat-completions subset that
``--model openai:<base_url>#<model>`` speaks (``drum.serve``). Requests in the server at once
are batched for the model (``--max-batch-size``, ``--batch-wait-ms``: ``drum.serve.batching``);
``--max-batch-size 1`` answers one at a time."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from drum.cli.common import (
    AllowOtherBaseOption,
    DeviceOption,
    DtypeOption,
    check_adapter,
    check_device,
    check_model,
    console,
    default_of,
    fail,
    load_lvlm,
    parse_dtype,
    wrap_adapter,
)

BATCHING_CONFIG = "drum.serve.batching:BatchingConfig"


def serve_command(
    model: Annotated[
        str, typer.Option("--model", "-m", help="LVLM: a hub id or a save_pretrained directory.")
    ],
    adapter: Annotated[
        Path | None,
        typer.Option(help="An adapter directory (drum vpgc train) put on the model it serves."),
    ] = None,
    allow_other_base: AllowOtherBaseOption = False,
    host: Annotated[
        str, typer.Option(help="Address to listen on (the default answers this machine alone).")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    served_model_name: Annotated[
        str | None,
        typer.Option(help="The name requests use (default: the --model argument, as vLLM)."),
    ] = None,
    max_concurrent_requests: Annotated[
        int, typer.Option(help="Requests in the server at once; beyond, a 429 (retry later).")
    ] = default_of("drum.serve.app:create_app", "max_concurrent_requests"),
    max_batch_size: Annotated[
        int,
        typer.Option(
            help="Requests one model pass answers at most (scoring in one forward, generation "
            "per max_tokens); 1: one at a time. Batches never exceed --max-concurrent-requests."
        ),
    ] = default_of(BATCHING_CONFIG, "max_batch_size"),
    batch_wait_ms: Annotated[
        float,
        typer.Option(
            help="Milliseconds a batch starting with fewer requests waits for more (0: none; "
            "requests that queue while the model is busy always go together)."
        ),
    ] = default_of(BATCHING_CONFIG, "batch_wait_ms"),
    api_key_env: Annotated[
        str | None,
        typer.Option(
            help="Require 'Authorization: Bearer <key>', the key read from this environment "
            "variable (default: no key required)."
        ),
    ] = None,
    no_prompt_logprobs: Annotated[
        bool,
        typer.Option(
            "--no-prompt-logprobs",
            help="Refuse prompt_logprobs as a hosted API does: generation alone (to try a "
            "client's generation-only use).",
        ),
    ] = False,
    device: DeviceOption = "cpu",
    dtype: DtypeOption = "auto",
    log_level: Annotated[str, typer.Option(help="uvicorn's log level.")] = "info",
) -> None:
    """Serve an LVLM over the OpenAI chat-completions API (generate; score through vLLM's
    prompt_logprobs) until interrupted."""
    check_device(device)
    parse_dtype(dtype)
    if max_concurrent_requests < 1:
        fail(f"--max-concurrent-requests must be >= 1, got {max_concurrent_requests}")
    if max_batch_size < 1:
        fail(f"--max-batch-size must be >= 1, got {max_batch_size}")
    if not 0 <= batch_wait_ms < float("inf"):  # NaN fails too
        fail(f"--batch-wait-ms must be a number of milliseconds >= 0, got {batch_wait_ms}")
    if not 0 < port < 65536:
        fail(f"--port must be from 1 to 65535, got {port}")
    api_key = None
    if api_key_env is not None:
        api_key = os.environ.get(api_key_env)
        if not api_key:
            fail(f"--api-key-env {api_key_env}: the environment variable is unset or empty")
    check_model(model, "--model")
    if adapter is not None:
        check_adapter(adapter)
    import uvicorn

    from drum.serve.app import create_app
    from drum.serve.batching import BatchingConfig
    from drum.serve.engine import ServeEngine

    lvlm = load_lvlm(model, device=device, dtype=dtype)
    if adapter is not None:
        lvlm = wrap_adapter(lvlm, adapter, allow_other_base=allow_other_base)
    name = served_model_name or model
    app = create_app(
        ServeEngine(lvlm, name, BatchingConfig(max_batch_size, batch_wait_ms)),
        max_concurrent_requests,
        api_key,
        prompt_logprobs=not no_prompt_logprobs,
    )
    console.print(f"serving {name!r} at http://{host}:{port}/v1 (Ctrl-C stops)")
    uvicorn.run(app, host=host, port=port, log_level=log_level)
