"""Which model a `chat`, `serve` or `export` talks to: the promoted run, or a run named by id.

The project state is read here and nowhere else in chat/serve/export, so a change to the state's
shape touches one function (``_run_record``). The prompt layout (style, system prompt) is read
from the run's own training data, not from the spec as it is now: the spec may have been edited
since the run trained, and the model answers best in the layout it learned.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from llmspec.spec.errors import Diagnostic, Pos, StateError
from llmspec.spec.load import LoadedSpec

STATE_DIR = ".llmspec"


@dataclass(frozen=True)
class RunModel:
    """A trained model as chat/serve/export use it.

    ``model_dir``: the adapter folder (``adapter``) or the full fine-tune's folder.
    ``base_model_path``: where the base weights are on this machine (a cache path).
    ``base_model_id``: the spec's name for the base model (a hub id, ``builtin:tiny``...).
    ``style``: chat | alpaca | completion | input_output, as the run's dataset was laid out.
    """

    run: str
    state_dir: Path
    run_dir: Path
    model_dir: Path
    adapter: bool
    base_model_path: str
    base_model_id: str
    base_model_revision: str | None
    style: str
    system: str | None
    train_dir: Path
    dataset_dir: Path | None

    @property
    def name(self) -> str:
        return f"{self.run}"

    @property
    def prompt_format(self) -> str:
        from llmspec.runtime.acceptance.runner import prompt_format_for_style

        return prompt_format_for_style(self.style)

    def model_ref(self, name: str = "fine-tuned"):
        from llmspec.runtime.acceptance.runner import ModelRef

        if self.adapter:
            return ModelRef(name=name, model_path=Path(self.base_model_path), adapter_path=self.model_dir)
        return ModelRef(name=name, model_path=self.model_dir)

    def base_ref(self):
        from llmspec.runtime.acceptance.runner import ModelRef

        return ModelRef(name="base", model_path=Path(self.base_model_path))

    def load(self, device: str = "auto"):
        """The model loaded for generation (``runtime.acceptance.runner.LoadedModel``)."""
        from llmspec.runtime.acceptance.runner import load_model

        ref = self.model_ref()
        return load_model(ref.model_path, adapter_path=ref.adapter_path, device=device,
                          prompt_format=self.prompt_format)

    def load_base(self, device: str = "auto"):
        """The base model, prompted with the tokenizer and chat template the run trained with."""
        from llmspec.runtime.acceptance.runner import load_model

        tokenizer = self.model_dir if (self.model_dir / "tokenizer_config.json").is_file() else None
        return load_model(self.base_model_path, tokenizer_path=tokenizer, device=device,
                          prompt_format=self.prompt_format)


def _error(code: str, message: str, where: str, hint: str | None = None) -> StateError:
    return StateError(Diagnostic(code, message, Pos(where), hint=hint))


def _run_record(state_dir: Path, run_id: str | None, display: str) -> tuple[str, dict]:
    """(run id, its manifest). The one place that reads the project state."""
    from llmspec.runtime.engine.state import State

    if run_id is None:
        promoted = State.load(state_dir).promoted
        if not promoted:
            raise _error("no-promoted-run", "no run has been promoted yet", display,
                         hint="run `llmspec apply` first, or give --run")
        run_id = promoted["run"]
    manifest_path = state_dir / "runs" / run_id / "manifest.json"
    if not manifest_path.exists():
        known = sorted(p.name for p in (state_dir / "runs").glob("*") if (p / "manifest.json").exists())
        raise _error("unknown-run", f"there is no complete run '{run_id}'", str(state_dir / "runs"),
                     hint="runs: " + (", ".join(known[-5:]) or "none"))
    from llmspec.runtime.engine.artifacts import RunManifest, load

    return run_id, load(RunManifest, manifest_path).model_dump(mode="json")


def resolve_run(loaded: LoadedSpec, run_id: str | None = None) -> RunModel:
    """The promoted run's model (or run ``run_id``'s); a ``StateError`` says what is missing."""
    state_dir = loaded.base_dir / STATE_DIR
    run_id, manifest = _run_record(state_dir, run_id, loaded.display_path)
    stages = manifest.get("stages", {})
    if "train" not in stages:
        raise _error("run-without-model", f"run '{run_id}' trained no model",
                     str(state_dir / "runs" / run_id / "manifest.json"))
    train_dir = state_dir / stages["train"]
    model_dir = train_dir / "output"
    adapter = (model_dir / "adapter_config.json").is_file()
    if not adapter and not (model_dir / "config.json").is_file():
        raise _error("model-not-found", f"run '{run_id}' has no saved model in {model_dir}", str(model_dir),
                     hint="the stage folder was removed; run `llmspec apply` to train again")
    from llmspec.runtime.models.resolve import base_model_ref, resolve_base_model

    base = loaded.spec.base_model
    dataset_dir = state_dir / stages["dataset"] if "dataset" in stages else None
    style, system = _layout(dataset_dir, loaded)
    return RunModel(run=run_id, state_dir=state_dir, run_dir=state_dir / "runs" / run_id,
                    model_dir=model_dir, adapter=adapter, base_model_path=resolve_base_model(base_model_ref(loaded.spec), loaded.base_dir),
                    base_model_id=base.id, base_model_revision=getattr(base, "revision", None),
                    style=style, system=system, train_dir=train_dir, dataset_dir=dataset_dir)


def _layout(dataset_dir: Path | None, loaded: LoadedSpec) -> tuple[str, str | None]:
    """(style, system prompt) of the run's training examples; the spec's when unreadable."""
    fmt = loaded.spec.format
    fallback = (fmt.style, fmt.system)
    if dataset_dir is None:
        return fallback
    try:
        meta = json.loads((dataset_dir / "dataset.json").read_text(encoding="utf-8"))
        with open(dataset_dir / meta["train_path"], encoding="utf-8") as fh:
            first = json.loads(fh.readline())
    except (OSError, ValueError, KeyError, TypeError):
        return fallback
    if isinstance(first.get("messages"), list):
        head = first["messages"][0] if first["messages"] else {}
        return "chat", head.get("content") if head.get("role") == "system" else None
    if "instruction" in first:
        return "alpaca", None
    return fallback
