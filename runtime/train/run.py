"""Step 5: retrain, with real Axolotl as a subprocess.

Offline and without telemetry; the log is kept beside the compiled config; progress (step,
loss) is parsed from the Hugging Face Trainer's log lines as they arrive. Checkpoints live in
the stage's work folder, which is named by the stage fingerprint, so an apply that was killed
mid-training resumes from the last checkpoint when the next apply runs the same stage.
"""

from __future__ import annotations

import ast
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable

from llmspec.spec.errors import Diagnostic, LlmspecError, Pos, TrainingError
from llmspec.spec.load import LoadedSpec

from llmspec.runtime.engine.atomic import write_json_atomic
from llmspec.runtime.train.config_file import write_training_config

PLUGIN = "llmspec.runtime.train.axolotl_plugin.LlmspecPlugin"
# The Trainer's own bars (training, evaluation) carry no description; dataset maps do
# ("Tokenizing Prompts: 100%|...| 11/11 [") and must not be read as training steps.
TRAINER_BAR = re.compile(r"^\s*\d+%\|[^|]*\|\s*(\d+)/(\d+) \[")
_LOG_DICT = re.compile(r"\{[^{}]*'(?:loss|eval_loss|train_loss)'[^{}]*\}")


def resolve_model(loaded: LoadedSpec, *, materialize: bool = True,
                  progress: Callable[[str, dict], None] | None = None) -> tuple[str, str | None]:
    """(model path or hub id, content fingerprint of the model; None for an unpinned hub id).

    ``materialize``: build the tiny model or convert a GGUF file when needed; without it the
    path is where the model will be (enough for checks that read no weights)."""
    from llmspec.runtime.engine.file_hashes import HashCache
    from llmspec.runtime.models import resolve

    state = loaded.base_dir / ".llmspec"
    cache = HashCache(state / "hashes.json" if state.is_dir() else None)
    ref = resolve.describe(loaded.spec.base_model.id, loaded.base_dir, revision=loaded.spec.base_model.revision,
                           cache=cache, pos=loaded.locate(("base_model", "id")))
    cache.save()
    path = resolve.materialize(ref, progress=progress) if materialize else resolve.planned_path(ref)
    return str(path), ref.fingerprint


def check_training_config(loaded: LoadedSpec, *, work: Path | None = None) -> list[Diagnostic]:
    """Axolotl's own verdict on the config this spec compiles to, at the spec's positions.

    Cheap to call before data exists: dataset paths are placeholders and builtin models are
    not built (Axolotl's validation reads neither). Empty when axolotl is not installed."""
    from llmspec.compiler.axolotl_config import compile_axolotl_config, resolve_hardware
    from llmspec.compiler.formatting import compile_format

    from llmspec.runtime.train.axolotl_check import axolotl_available, validate_axolotl_config

    if not axolotl_available():
        return []
    spec = loaded.spec
    model_path = resolve_model(loaded, materialize=False)[0]
    work = work or loaded.base_dir / ".llmspec" / "work" / "check"
    dataset = {"train": str(work / "train.jsonl")}
    if spec.split.eval_fraction > 0:
        dataset["eval"] = str(work / "eval.jsonl")
    compiled = compile_axolotl_config(spec, model_path=model_path, dataset=dataset, run_dir=work,
                                      format_plan=compile_format(spec.format, None, locate=loaded.locate),
                                      hardware=resolve_hardware(spec.training.hw))
    with quiet_native_stderr():
        return validate_axolotl_config(compiled, loaded.locate)


@contextmanager
def quiet_native_stderr(log_path: Path | None = None):
    """Send what importing Axolotl's stack prints straight to fd 2 (torchao's missing CUDA
    kernels, torch's deprecation lines) to ``log_path`` (appended), or nowhere: noise on the
    user's terminal, and our diagnostics come back as data."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(log_path or os.devnull, "a", encoding="utf-8") as sink:
            os.dup2(sink.fileno(), 2)
            yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)


def parse_log_line(line: str) -> dict[str, float] | None:
    """The metrics dict of a Trainer log line such as {'loss': 1.23, 'epoch': 0.5}, else None."""
    match = _LOG_DICT.search(line)
    if not match:
        return None
    try:
        raw = ast.literal_eval(match.group(0))
    except (ValueError, SyntaxError):
        return None
    out = {}
    for k, v in raw.items():
        try:
            out[str(k)] = float(v)
        except (TypeError, ValueError):
            continue
    return out


def datasets_cache(work: Path) -> Path:
    """The project's cache of Axolotl's ``datasets`` copies: ``.llmspec/cache/datasets``
    (``work`` is ``.llmspec/work/train-<fp>``), deleted with the state folder."""
    return Path(work).absolute().parent.parent / "cache" / "datasets"


def expected_steps(train_examples: int, training) -> int:
    """The optimizer steps Axolotl will run: its own formula, ceil(examples x epochs / batch)
    (not epochs x ceil(examples / batch), which said 304 where the Trainer ran 301). With sample
    packing (CUDA) Axolotl estimates from packing efficiency; the Trainer's count then wins."""
    gpus = training.hw.gpus if training.hw.type == "cuda" else 1
    per_step = training.batch.micro * training.batch.accumulate * gpus
    return training.max_steps or max(1, math.ceil(train_examples * training.epochs / per_step))


def train(loaded: LoadedSpec, *, dataset_dir: Path, work: Path, fingerprint: str,
          progress: Callable[[str, dict], None], env: dict[str, str]) -> dict[str, Any]:
    from llmspec.compiler.axolotl_config import compile_axolotl_config, resolve_hardware
    from llmspec.compiler.formatting import compile_format

    spec = loaded.spec
    ds = json.loads((dataset_dir / "dataset.json").read_text())
    dataset = {"train": str(dataset_dir / ds["train_path"])}
    if ds.get("eval_path"):
        dataset["eval"] = str(dataset_dir / ds["eval_path"])
    model_path, _ = resolve_model(loaded, progress=progress)
    hardware = resolve_hardware(spec.training.hw)
    fmt_plan = compile_format(spec.format, None, locate=loaded.locate)
    compiled = compile_axolotl_config(spec, model_path=model_path, dataset=dataset, run_dir=work,
                                      format_plan=fmt_plan, hardware=hardware)
    from llmspec.runtime.train.axolotl_check import validate_axolotl_config

    work.mkdir(parents=True, exist_ok=True)
    with quiet_native_stderr(work / "train.log"):
        problems = [d for d in validate_axolotl_config(compiled, loaded.locate) if d.severity == "error"]
    if problems:
        raise TrainingError(problems)
    # Seeded adapter init and per-step metrics (see axolotl_plugin.py).
    compiled.config["plugins"] = list(compiled.config.get("plugins") or []) + [PLUGIN]
    # Resume is what makes a killed apply cheap: Axolotl picks up the newest checkpoint itself.
    compiled.config.setdefault("auto_resume_from_checkpoints", True)
    total = expected_steps(ds["train_size"], spec.training)
    if "save_steps" not in compiled.config and "saves_per_epoch" not in compiled.config:
        compiled.config["save_steps"] = max(10, total // 4)
    write_training_config(compiled)
    log_path = work / "train.log"
    out_dir = Path(compiled.config["output_dir"])

    run_env = {**env, **compiled.env}  # compiled.env: the offline, no-telemetry variables
    # A pipe makes the child's stdout block-buffered: the Trainer's loss lines would arrive at exit.
    run_env["PYTHONUNBUFFERED"] = "1"
    # `datasets` copies the training rows into its cache (~/.cache/huggingface/datasets by
    # default), where they would outlive the project's state folder: keep the copy inside it.
    run_env["HF_DATASETS_CACHE"] = str(datasets_cache(work))
    bin_dir = str(Path(sys.executable).parent)
    run_env["PATH"] = bin_dir + os.pathsep + run_env.get("PATH", "")
    cmd = list(compiled.launcher)
    if cmd and cmd[0] == "axolotl" and Path(bin_dir, "axolotl").exists():
        cmd[0] = str(Path(bin_dir, "axolotl"))
    for ckpt in out_dir.glob("checkpoint-*"):
        # Axolotl resumes from the newest checkpoint without checking it is whole; the
        # Trainer writes trainer_state.json last, so a checkpoint without it was cut short.
        if not (ckpt / "trainer_state.json").exists():
            shutil.rmtree(ckpt, ignore_errors=True)
    resumed_step = max((int(c.name.rsplit("-", 1)[1]) for c in out_dir.glob("checkpoint-*")
                        if c.name.rsplit("-", 1)[1].isdigit()), default=0)
    resumed = resumed_step > 0
    progress("train-start", {"total_steps": total, "resumed": resumed, "resumed_step": resumed_step,
                             "command": " ".join(cmd)})

    history: list[dict[str, float]] = []
    final: dict[str, float] = {}
    started = time.monotonic()
    with open(log_path, "a", encoding="utf-8") as log:
        log.write(f"# llmspec: {' '.join(cmd)}\n")
        log.flush()
        try:
            proc = subprocess.Popen(cmd, cwd=work, env=run_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                    text=True, errors="replace", bufsize=1, start_new_session=True)
        except FileNotFoundError:
            raise TrainingError(Diagnostic(
                "axolotl-missing", "the `axolotl` command is not installed", loaded.locate(("training",)),
                hint="install the training extra: pip install 'llmspec-tune[train]' (make setup does)")) from None
        try:
            assert proc.stdout is not None
            step_seen = resumed_step  # a resumed run counts on from its checkpoint, not from 0
            for line in proc.stdout:
                log.write(line)
                for done, of in TRAINER_BAR.findall(line):
                    if int(of) != total and abs(int(of) - total) <= max(3, total // 10):
                        # The Trainer's count wins: Axolotl drops examples longer than sequence_len
                        # (and estimates when packing), which the estimate cannot know. Said once.
                        progress("train-total", {"total_steps": int(of), "estimated": total})
                        total = int(of)
                    if int(of) == total and int(done) > step_seen:
                        step_seen = int(done)
                        progress("train-step", {"step": step_seen, "total_steps": total, "loss": None,
                                                "eval_loss": None})
                metrics = parse_log_line(line)
                if metrics is None:
                    continue
                if "train_loss" in metrics or "train_runtime" in metrics:
                    final.update(metrics)
                    continue
                history.append(metrics)
                progress("train-step", {"step": step_seen, "total_steps": total, "loss": metrics.get("loss"),
                                        "eval_loss": metrics.get("eval_loss")})
            code = proc.wait()
        except BaseException:
            _stop(proc)
            raise
    if code != 0:
        tail = log_path.read_text(encoding="utf-8", errors="replace").splitlines()[-15:]
        raise TrainingError(Diagnostic(
            "training-failed", f"Axolotl exited with status {code}; last lines:\n    " + "\n    ".join(tail),
            Pos(str(log_path)), hint=f"the full log is {log_path}"))
    history = _metrics_history(out_dir) or _number_steps(history, total)
    is_adapter = (out_dir / "adapter_config.json").exists()
    if not is_adapter and not (out_dir / "config.json").exists():
        raise TrainingError(Diagnostic("training-no-model", f"Axolotl finished but wrote no model in {out_dir}",
                                       Pos(str(log_path))))
    for ckpt in out_dir.glob("checkpoint-*"):
        # Checkpoints exist for resuming; a finished stage keeps only the final weights.
        shutil.rmtree(ckpt, ignore_errors=True)
    evals = [h["eval_loss"] for h in history if h.get("eval_loss") is not None]
    losses = [h["loss"] for h in history if h.get("loss") is not None]
    summary = {
        "method": spec.training.method, "base_model": spec.base_model.id, "hardware": hardware,
        "steps": int(history[-1]["step"]) if history else total, "epochs": final.get("epoch"),
        "duration_s": round(time.monotonic() - started, 1), "resumed": resumed,
        "history": history,
        "final": {"train_loss": final.get("train_loss", losses[-1] if losses else None),
                  "eval_loss": evals[-1] if evals else None,
                  "samples_per_second": final.get("train_samples_per_second"),
                  "tokens_per_second": _tokens_per_second(dataset_dir, ds, final)},
        "config_path": "axolotl.yaml", "log_path": "train.log",
    }
    write_json_atomic(work / "training.json", summary)
    progress("train-step", {"step": summary["steps"], "total_steps": total,
                            "loss": losses[-1] if losses else None, "eval_loss": evals[-1] if evals else None})
    rel_out = out_dir.relative_to(work).as_posix() if out_dir.is_relative_to(work) else str(out_dir)
    return {"model": rel_out, "adapter": is_adapter, "base_model_path": model_path,
            "final_loss": summary["final"]["train_loss"], "eval_loss": summary["final"]["eval_loss"],
            "steps": summary["steps"]}


def _metrics_history(out_dir: Path) -> list[dict[str, float]]:
    """Per-step records written by the llmspec Axolotl plugin (a resumed run appends: the
    last record of a step wins)."""
    path = out_dir / "llmspec_metrics.jsonl"
    if not path.exists():
        return []
    by_key: dict[tuple, dict] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        kind = "eval" if "eval_loss" in rec else ("final" if "train_runtime" in rec else "train")
        if kind == "final":
            continue
        by_key[(int(rec.get("step", 0)), kind)] = rec
    out = []
    for (step, _), rec in sorted(by_key.items()):
        out.append({"step": step, "epoch": _num(rec.get("epoch")), "loss": _num(rec.get("loss")),
                    "eval_loss": _num(rec.get("eval_loss")), "learning_rate": _num(rec.get("learning_rate"))})
    return out


def _num(value) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _number_steps(history: list[dict[str, float]], total: int) -> list[dict[str, float]]:
    """Trainer log lines carry epoch but not always step: derive steps from the epoch fraction."""
    if not history:
        return history
    last_epoch = max((h.get("epoch", 0.0) for h in history), default=0.0) or 1.0
    out = []
    for h in history:
        step = h.get("step")
        if step is None:
            step = round(h.get("epoch", 0.0) / last_epoch * total) if total else len(out) + 1
        out.append({"step": int(step), "epoch": h.get("epoch"), "loss": h.get("loss"),
                    "eval_loss": h.get("eval_loss"), "learning_rate": h.get("learning_rate")})
    return out


def _tokens_per_second(dataset_dir: Path, ds: dict, final: dict) -> float | None:
    runtime = final.get("train_runtime")
    tokens = ds.get("train_tokens")
    if not runtime or not tokens:
        return None
    return round(tokens * (final.get("epoch") or 1) / runtime, 1)


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=10)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
