"""Run `llmspec serve`: uvicorn over the FastAPI app on the CPU, vLLM on CUDA.

uvicorn handles SIGTERM and SIGINT itself: it stops accepting connections, lets the requests in
flight finish (streams included), then runs the app's shutdown, which drains the batcher.
"""

from __future__ import annotations

import os
import shlex
import shutil
from pathlib import Path
from typing import Any, Callable

from llmspec.spec.errors import Diagnostic, LlmspecError

from .target import RunModel


def vllm_command(run: RunModel, *, model_name: str, host: str, port: int, api_key_env: str | None,
                 max_tokens: int) -> list[str]:
    """The `vllm serve` command for a run: the base model with the adapter as a LoRA module, or
    the full fine-tune's folder. vLLM reads the key from the environment variable itself, so the
    key never appears in the process list."""
    if run.adapter:
        cmd = ["vllm", "serve", run.base_model_path, "--enable-lora",
               "--lora-modules", f"{model_name}={run.model_dir}",
               "--max-lora-rank", str(_lora_rank(run.model_dir))]
    else:
        cmd = ["vllm", "serve", str(run.model_dir), "--served-model-name", model_name]
    cmd += ["--host", host, "--port", str(port), "--generation-config", "vllm",
            "--chat-template", str(_chat_template_file(run))]
    if api_key_env:
        cmd += ["--api-key", f"${{{api_key_env}}}"]
    return cmd


def _lora_rank(adapter_dir: Path) -> int:
    import json

    rank = int(json.loads((adapter_dir / "adapter_config.json").read_text()).get("r", 16))
    # vLLM accepts these ranks only; the smallest that holds the adapter.
    return next(r for r in (8, 16, 32, 64, 128, 256, 320, 512) if r >= rank)


def _chat_template_file(run: RunModel) -> Path:
    return run.model_dir / "chat_template.jinja"


def run_vllm(cmd: list[str], api_key_env: str | None) -> None:
    """Replace this process with vLLM (signals then reach vLLM directly)."""
    if shutil.which("vllm") is None:
        raise LlmspecError(Diagnostic("no-vllm", "CUDA serving runs vLLM, which is not installed",
                                      hint="pip install 'llmspec[vllm]', or serve on the CPU with --engine transformers"))
    argv = [os.environ.get(api_key_env, "") if a == f"${{{api_key_env}}}" else a for a in cmd]
    os.execvp(argv[0], argv)


def serve_transformers(run: RunModel, *, model_name: str, host: str, port: int, api_key: str | None,
                       max_batch: int, max_queue: int, max_tokens: int, max_body: int,
                       on_ready: Callable[[str], None], log: Any = None, device: str = "auto") -> None:
    """Serve with transformers in this process until SIGTERM/SIGINT. ``log``: the interaction
    log (``runtime.feedback.log.InteractionLog``) or None."""
    import contextlib

    import uvicorn

    from .app import ServeSettings, create_app
    from .batcher import Batcher

    sock = listening_socket(host, port)
    model = run.load(device=device)
    batcher = Batcher(model, max_batch=max_batch, max_queue=max_queue)
    settings = ServeSettings(model_name=model_name, run=run.run, system=run.system, api_key=api_key,
                             max_body=max_body, max_tokens=max_tokens)
    app = create_app(batcher, model, settings, log=log)

    @contextlib.asynccontextmanager
    async def lifespan(_app):
        on_ready(f"http://{host}:{sock.getsockname()[1]}")
        yield
        batcher.close()
        if log is not None:
            log.close()

    app.router.lifespan_context = lifespan
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False,
                            timeout_graceful_shutdown=60, limit_concurrency=max_queue * 2 + 16)
    _draining_server_class()(config).run(sockets=[sock])


def _draining_server_class():
    import signal

    import uvicorn

    class DrainingServer(uvicorn.Server):
        """uvicorn re-raises SIGTERM after its graceful shutdown, so the process would die by
        the signal; a drained server has done its job and exits 0. A second Ctrl-C still
        forces the exit."""

        def handle_exit(self, sig, frame):
            if self.should_exit and sig == signal.SIGINT:
                self.force_exit = True
            else:
                self.should_exit = True

    return DrainingServer


def listening_socket(host: str, port: int):
    """The listening socket, bound before the model loads: a taken port fails in a second,
    with our error, not after the load with uvicorn's."""
    import socket

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP, not the default 0: asyncio turns Nagle's algorithm off (TCP_NODELAY) only on
    # connections whose socket says TCP, and with it on, a response written in two parts (headers,
    # body) waited for the client's delayed ACK: about 40 ms per request.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise LlmspecError(Diagnostic("serve-bind", f"cannot listen on {host}:{port}: {exc.strerror or exc}",
                                      hint="is another server on that port? pick another --port")) from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def printable(cmd: list[str]) -> str:
    return " ".join(a if a.startswith("${") else shlex.quote(a) for a in cmd)
