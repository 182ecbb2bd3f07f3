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
from typing import TYPE_CHECKING, Any, Callable

from llmspec.spec.errors import Diagnostic, Pos, TrainingError

from llmspec.runtime.engine.atomic import write_json_atomic
from llmspec.runtime.train.config_file import write_training_config

if TYPE_CHECKING:
    from llmspec.compiler.axolotl_config import CompiledTraining

# The Trainer's own bars (training, evaluation) carry no description; dataset maps do
# ("Tokenizing Prompts: 100%|...| 11/11 [") and must not be read as training steps.
TRAINER_BAR = re.compile(r"^\s*\d+%\|[^|]*\|\s*(\d+)/(\d+) \[")
_LOG_DICT = re.compile(r"\{[^{}]*'(?:loss|eval_loss|train_loss)'[^{}]*\}")


def check_training_config(compiled: dict[str, Any], *, model_path: str, work: Path,
                          locate: Callable[[tuple], Pos]) -> list[Diagnostic]:
    """Axolotl's own verdict on a Plan's train stage, at the spec's positions.

    Cheap to call before data exists: the dataset folder is a placeholder (Axolotl's
    validation reads no data). Empty when axolotl is not installed."""
    from llmspec.runtime.train.axolotl_check import axolotl_available, validate_axolotl_config

    if not axolotl_available():
        return []
    training = prepare_training(compiled, model_path=model_path, dataset_dir=work / "dataset", work=work)
    with quiet_native_stderr():
        return validate_axolotl_config(training, locate)


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


def expected_steps(train_examples: int, *, micro: int, accumulate: int, gpus: int, epochs: int,
                   max_steps: int | None) -> int:
    """The optimizer steps Axolotl will run: its own formula, ceil(examples x epochs / batch)
    (not epochs x ceil(examples / batch), which said 304 where the Trainer ran 301). With sample
    packing (CUDA) Axolotl estimates from packing efficiency; the Trainer's count then wins."""
    return max_steps or max(1, math.ceil(train_examples * epochs / (micro * accumulate * gpus)))


def planned_steps(compiled: dict[str, Any], train_examples: int) -> int:
    """Optimizer steps of a Plan's train stage on ``train_examples`` examples."""
    return expected_steps(train_examples, micro=compiled["batch"]["micro"], accumulate=compiled["batch"]["accumulate"],
                          gpus=compiled["gpus"], epochs=compiled["epochs"], max_steps=compiled["max_steps"])


def prepare_training(compiled: dict[str, Any], *, model_path: str, dataset_dir: Path, work: Path,
                     train_examples: int | None = None) -> "CompiledTraining":
    """A Plan's train stage made concrete: the real folders in place of its placeholders, the
    eval split dropped when the dataset has none, checkpoints spaced by the real step count.
    ``compile`` writes and ``apply`` trains exactly what this returns."""
    from llmspec.compiler.axolotl_config import CompiledTraining, decoder_layer_class

    training = CompiledTraining.from_json(compiled["axolotl"]).materialize(
        {"model": model_path, "dataset": str(Path(dataset_dir).absolute()), "work": str(Path(work).absolute())})
    cfg = training.config
    for entry in cfg.get("test_datasets") or []:
        if not Path(entry["path"]).exists() and (Path(dataset_dir) / "dataset.json").exists():
            cfg.pop("test_datasets")  # a split too small to hold an eval example
            break
    fsdp = cfg.get("fsdp_config")
    if isinstance(fsdp, dict) and "transformer_layer_cls_to_wrap" not in fsdp:
        layer = decoder_layer_class(model_path)  # read from the model's own config.json
        if layer:
            fsdp["transformer_layer_cls_to_wrap"] = layer
    if train_examples is None and (Path(dataset_dir) / "dataset.json").exists():
        train_examples = json.loads((Path(dataset_dir) / "dataset.json").read_text())["train_size"]
    if train_examples is not None and "save_steps" not in cfg and "saves_per_epoch" not in cfg:
        cfg["save_steps"] = max(10, planned_steps(compiled, train_examples) // 4)
    return training


def train(training: "CompiledTraining", compiled: dict[str, Any], *, dataset_dir: Path, work: Path,
          locate: Callable[[tuple], Pos], progress: Callable[[str, dict], None],
          env: dict[str, str]) -> dict[str, Any]:
    """Run Axolotl on ``training`` (``prepare_training``'s result) in ``work``."""
    from llmspec.runtime.train.axolotl_check import validate_axolotl_config

    ds = json.loads((dataset_dir / "dataset.json").read_text())
    model_path = training.config["base_model"]
    hardware = training.hardware
    work.mkdir(parents=True, exist_ok=True)
    with quiet_native_stderr(work / "train.log"):
        problems = [d for d in validate_axolotl_config(training, locate) if d.severity == "error"]
    if problems:
        raise TrainingError(problems)
    total = planned_steps(compiled, ds["train_size"])
    compiled_training = training
    write_training_config(compiled_training)
    log_path = work / "train.log"
    out_dir = Path(compiled_training.config["output_dir"])

    run_env = {**env, **compiled_training.env}  # compiled.env: the offline, no-telemetry variables
    # A pipe makes the child's stdout block-buffered: the Trainer's loss lines would arrive at exit.
    run_env["PYTHONUNBUFFERED"] = "1"
    # `datasets` copies the training rows into its cache (~/.cache/huggingface/datasets by
    # default), where they would outlive the project's state folder: keep the copy inside it.
    run_env["HF_DATASETS_CACHE"] = str(datasets_cache(work))
    bin_dir = str(Path(sys.executable).parent)
    run_env["PATH"] = bin_dir + os.pathsep + run_env.get("PATH", "")
    cmd = list(compiled_training.launcher)
    if cmd and cmd[0] == "axolotl" and Path(bin_dir, "axolotl").exists():
        cmd[0] = str(Path(bin_dir, "axolotl"))
    prepared = Path(compiled_training.config.get("dataset_prepared_path") or work / "prepared")
    if prepared.exists():
        # A kill while Axolotl tokenized leaves a half-written cache it would trust on resume
        # ("neither a Dataset directory nor..."); tokenizing again costs seconds, checkpoints stay.
        shutil.rmtree(prepared, ignore_errors=True)
    for ckpt in out_dir.glob("checkpoint-*"):
        # Axolotl resumes from the newest checkpoint without checking it is whole; the
        # Trainer writes trainer_state.json last, so a checkpoint without it was cut short.
        if not (ckpt / "trainer_state.json").exists():
            shutil.rmtree(ckpt, ignore_errors=True)
    resumed_step = max((int(c.name.rsplit("-", 1)[1]) for c in out_dir.glob("checkpoint-*")
                        if c.name.rsplit("-", 1)[1].isdigit()), default=0)
    resumed = resumed_step > 0
    from llmspec.runtime.engine.faults import crash_point

    crash_point("before-axolotl")
    progress("train-start", {"total_steps": total, "resumed": resumed, "resumed_step": resumed_step,
                             "command": " ".join(cmd)})

    history: list[dict[str, float]] = []
    final: dict[str, float] = {}
    started = time.monotonic()
    # The trainer runs in a child process: its CPU time (wall time hides how loaded the machine
    # was) is what the children's rusage gains while it runs; nothing else is spawned meanwhile.
    cpu_before = _children_cpu()
    with open(log_path, "a", encoding="utf-8") as log:
        log.write(f"# llmspec: {' '.join(cmd)}\n")
        log.flush()
        try:
            proc = subprocess.Popen(cmd, cwd=work, env=run_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                    text=True, errors="replace", bufsize=1, start_new_session=True)
        except FileNotFoundError:
            raise TrainingError(Diagnostic(
                "axolotl-missing", "the `axolotl` command is not installed", locate(("training",)),
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
        "method": compiled["method"], "base_model": compiled["base_model"]["id"], "hardware": hardware,
        "steps": int(history[-1]["step"]) if history else total, "epochs": final.get("epoch"),
        "duration_s": round(time.monotonic() - started, 1), "cpu_s": round(_children_cpu() - cpu_before, 1),
        "resumed": resumed, "history": history,
        "final": {"train_loss": final.get("train_loss", losses[-1] if losses else None),
                  "eval_loss": evals[-1] if evals else None,
                  "samples_per_second": final.get("train_samples_per_second"),
                  "tokens_per_second": _tokens_per_second(dataset_dir, ds, final)},
        "config_path": "axolotl.yaml", "log_path": "train.log",
    }
    if training.config.get("rl"):
        summary["rl"] = training.config["rl"]
        summary["preference"] = preference_summary(history)
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
                    "eval_loss": _num(rec.get("eval_loss")), "learning_rate": _num(rec.get("learning_rate")),
                    **{k: _num(v) for k, v in rec.items() if k.startswith(PREFERENCE_METRICS)}})
    return out


# What TRL's preference trainers log beside the loss (DPO, ORPO, KTO): the reward the policy gives
# the chosen and rejected answers and their margin, and how often chosen wins.
PREFERENCE_METRICS = ("rewards/", "eval_rewards/")


def preference_summary(history: list[dict[str, Any]]) -> dict[str, float] | None:
    """The preference metrics of the last step that logged them; None for supervised runs."""
    for h in reversed(history):
        found = {k: v for k, v in h.items() if k.startswith(PREFERENCE_METRICS) and v is not None}
        if found:
            return found
    return None


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


def _children_cpu() -> float:
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


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
