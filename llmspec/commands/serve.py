"""`llmspec serve`: an OpenAI-compatible HTTP API over the promoted (or a given) run."""

from __future__ import annotations

import os
from pathlib import Path

import click

from llmspec.spec.errors import Diagnostic, LlmspecError


def api_key_from_env(name: str | None) -> str | None:
    """The key in environment variable ``name``; an unset or empty variable is an error, so a
    typo never starts an open server that was meant to be closed."""
    if name is None:
        return None
    key = os.environ.get(name, "")
    if not key.strip():
        raise LlmspecError(Diagnostic("api-key-missing", f"environment variable {name} is not set or empty",
                                      hint=f"export {name}=<a long random key>"))
    return key.strip()


@click.command("serve")
@click.argument("spec", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--run", "run_id", help="Serve this run instead of the promoted one.")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to bind. 0.0.0.0 exposes the model to the network: set --api-key-env then.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535))
@click.option("--api-key-env", metavar="NAME", help="Require `Authorization: Bearer $NAME` on /v1 routes.")
@click.option("--engine", type=click.Choice(["auto", "transformers", "vllm"]), default="auto", show_default=True,
              help="auto: vLLM when CUDA is visible and vLLM is installed, else transformers in-process.")
@click.option("--model-name", help="The model id clients send (default: the project name).")
@click.option("--max-batch", default=8, show_default=True, type=click.IntRange(1, 256),
              help="Requests answered together by one generate call.")
@click.option("--max-queue", default=64, show_default=True, type=click.IntRange(1, 100000),
              help="Requests waiting or running before new ones get 429.")
@click.option("--max-tokens", default=512, show_default=True, type=click.IntRange(1),
              help="Cap on a request's max_tokens (400 above it).")
@click.option("--max-body", default=1 << 20, show_default=True, type=click.IntRange(1),
              help="Cap on a request body in bytes (413 above it).")
@click.option("--dry-run", is_flag=True, help="Print what would be served (and the vLLM command) and exit.")
def serve_command(spec: Path, run_id: str | None, host: str, port: int, api_key_env: str | None, engine: str,
                  model_name: str | None, max_batch: int, max_queue: int, max_tokens: int, max_body: int,
                  dry_run: bool) -> None:
    """Serve the promoted model: POST /v1/chat/completions (stream: true for server-sent
    events), POST /v1/completions, GET /v1/models, GET /health. SIGTERM finishes the requests
    in flight, then exits."""
    from llmspec.api import load_spec
    from llmspec.runtime.serve.server import printable, run_vllm, serve_transformers, vllm_command
    from llmspec.runtime.serve.target import resolve_run

    loaded = load_spec(spec)
    run = resolve_run(loaded, run_id)
    name = model_name or loaded.spec.project
    api_key = api_key_from_env(api_key_env)
    if engine == "auto":
        engine = "vllm" if _cuda_visible() else "transformers"
        if engine == "vllm" and not _has_vllm():
            click.echo("CUDA is visible but vLLM is not installed (pip install 'llmspec[vllm]'); "
                       "serving with transformers in-process.", err=True)
            engine = "transformers"
    cmd = vllm_command(run, model_name=name, host=host, port=port, api_key_env=api_key_env, max_tokens=max_tokens)
    click.echo(f"Serving run {run.run} as '{name}' ({'LoRA adapter on ' + run.base_model_id if run.adapter else 'full model'})"
               f" with {engine}.", err=True)
    if engine == "vllm" or dry_run:
        click.echo(("vLLM command: " if engine == "vllm" else "On CUDA with vLLM: ") + printable(cmd), err=True)
    if dry_run:
        return
    if host not in ("127.0.0.1", "localhost", "::1") and api_key is None:
        click.echo(f"warning: listening on {host} without --api-key-env: anyone who reaches this port can "
                   "use the model.", err=True)
    if engine == "vllm":
        run_vllm(cmd, api_key_env)
        return

    def ready(url: str) -> None:
        click.echo(f"Listening on {url}  (OpenAI base_url: {url}/v1; Ctrl-C or SIGTERM to stop)", err=True)

    log = _interaction_log(loaded)
    serve_transformers(run, model_name=name, host=host, port=port, api_key=api_key, max_batch=max_batch,
                       max_queue=max_queue, max_tokens=max_tokens, max_body=max_body, on_ready=ready, log=log)
    click.echo("Stopped: every request in flight was answered.", err=True)


def _interaction_log(loaded):
    """The log `serve.log` asks for (None when it is turned off)."""
    settings = loaded.spec.serve.log
    if not settings.enabled:
        click.echo("Interaction log: off (serve.log.enabled: false); POST /v1/feedback answers 404.", err=True)
        return None
    from llmspec.runtime.feedback.location import store_target
    from llmspec.runtime.feedback.log import InteractionLog, redactor
    from llmspec.runtime.feedback.store import FeedbackStore

    store = FeedbackStore.open(store_target(loaded.base_dir, settings.store))
    click.echo(f"Interaction log: {store.where}{' (PII redacted)' if settings.redact else ''}; "
               "feedback: POST /v1/feedback", err=True)
    return InteractionLog(store, redactor(loaded.spec.quality) if settings.redact else None)


def _cuda_visible() -> bool:
    import torch

    return torch.cuda.is_available()


def _has_vllm() -> bool:
    import importlib.util

    return importlib.util.find_spec("vllm") is not None
