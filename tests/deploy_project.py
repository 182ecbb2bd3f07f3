"""A small applied project on builtin:tiny, and a `llmspec serve` process over it, for the
deploy tests (serve, test --endpoint, chat, export). Training is real Axolotl on the CPU."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LLMSPEC = [sys.executable, "-m", "llmspec.cli"]
OFFLINE = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "WANDB_MODE": "disabled", "DO_NOT_TRACK": "1",
           "AXOLOTL_DO_NOT_TRACK": "1", "TOKENIZERS_PARALLELISM": "false"}

SPEC = """\
llmspec: 1
project: deploy-bot
base_model: {id: builtin:tiny}
sources:
  tickets:
    path: data/tickets.jsonl
    format: jsonl
    columns: {question: str, answer: str, product: "str?"}
quality:
  rules:
    - require: {columns: [question, answer]}
    - dedupe: {columns: [question], method: exact}
format:
  style: chat
  system: You are Acme's support assistant.
  map:
    tickets: {user: question, assistant: answer}
split: {eval_fraction: 0.1, seed: 1}
training:
  method: lora
  learning_rate: 0.002
  max_steps: 8
  sequence_len: 128
  batch: {micro: 8, accumulate: 1}
  hardware: cpu
acceptance:
  max_new_tokens: 16
  tests:
    - {name: answers-something, prompt: How do I reset my router?, expect: [{max_chars: 2000}]}
    - {name: answers-billing, prompt: Where is my invoice?, expect: [{max_chars: 2000}]}
  gates:
    pass_rate: ">= 0.5"
"""


def llmspec(args, cwd, env=None, timeout=600, check=True, input=None):
    proc = subprocess.run(LLMSPEC + list(args), cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **OFFLINE, **(env or {})}, input=input)
    if check and proc.returncode != 0:
        raise AssertionError(f"llmspec {' '.join(args)} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


def applied_project(tmp: Path, spec: str = SPEC) -> Path:
    (tmp / "data").mkdir(parents=True)
    lines = (REPO / "examples/support-bot/data/tickets.jsonl").read_bytes().splitlines(keepends=True)[:120]
    (tmp / "data/tickets.jsonl").write_bytes(b"".join(lines))
    (tmp / "llmspec.yaml").write_text(spec)
    llmspec(["apply", "llmspec.yaml", "--yes"], tmp)
    return tmp


class Server:
    """`llmspec serve` in a child process on a free port; ``url`` once it listens."""

    def __init__(self, project: Path, *args: str, env: dict | None = None, timeout: float = 120):
        self.proc = subprocess.Popen(LLMSPEC + ["serve", "llmspec.yaml", "--port", "0", *args], cwd=project,
                                     env={**os.environ, **OFFLINE, **(env or {})}, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        self.lines: list[str] = []
        self.url = None
        ready = threading.Event()

        def read():
            for line in self.proc.stderr:
                self.lines.append(line)
                found = re.search(r"Listening on (http://\S+)", line)
                if found:
                    self.url = found.group(1)
                    ready.set()
            ready.set()

        threading.Thread(target=read, daemon=True).start()
        if not ready.wait(timeout) or self.url is None:
            self.stop()
            raise AssertionError("llmspec serve did not start:\n" + "".join(self.lines))

    @property
    def base_url(self) -> str:
        return self.url + "/v1"

    def stop(self, timeout: float = 60) -> int:
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()


def wait_until(predicate, timeout: float = 30.0, step: float = 0.05) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(step)
    return False
