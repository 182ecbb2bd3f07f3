"""What the plan says about retention and replay: resolved from the spec once, so the
acceptance and replay stages carry their whole config and the plan can say when retention is
off and why."""

from __future__ import annotations

from typing import Any

from llmspec.spec.builtin_models import BUILTIN_MODELS
from llmspec.spec.models import ProjectSpec


def is_gguf(model_id: str) -> bool:
    """A base model read from a GGUF file (converted into a model folder before training)."""
    builtin = BUILTIN_MODELS.get(model_id)
    return builtin.gguf if builtin is not None else model_id.lower().endswith(".gguf")


def retention_config(spec: ProjectSpec) -> dict[str, Any]:
    """The acceptance stage's ``retention`` entry: ``enabled`` decided, with the ``reason``
    the plan prints."""
    ret = spec.acceptance.retention
    model_id = spec.base_model.id
    builtin = BUILTIN_MODELS.get(model_id)
    if ret.enabled is False:
        return {"enabled": False, "reason": "turned off in the spec (acceptance.retention: false)"}
    if ret.enabled == "auto" and builtin is not None and not builtin.pretrained:
        return {"enabled": False, "reason": f"{model_id} is not a pretrained model: it knows nothing to retain"}
    if spec.acceptance.baseline == "none" and ret.enabled == "auto":
        return {"enabled": False, "reason": "acceptance.baseline is none: there is no base model run to compare"}
    return {"enabled": True, "reason": "on by default for a pretrained base model" if ret.enabled == "auto"
            else "turned on in the spec",
            "suite": ret.suite, "max_drop": ret.max_drop, "max_drop_by_tag": dict(ret.max_drop_by_tag),
            "max_drift": ret.max_drift, "severity": ret.severity, "max_new_tokens": ret.max_new_tokens}


def replay_config(spec: ProjectSpec) -> dict[str, Any] | None:
    """The replay stage's config (from: base_model), or None when there is no such stage."""
    replay = spec.training.replay
    if replay is None or not replay.from_base_model:
        return None
    return {"from": "base_model", "prompts": replay.prompts, "max_new_tokens": replay.max_new_tokens,
            "system": spec.format.system, "chat_template": spec.base_model.chat_template,
            "style": spec.format.style}


def replay_mix(spec: ProjectSpec) -> dict[str, Any] | None:
    """What the dataset stage mixes in: the draw, whichever the origin."""
    replay = spec.training.replay
    if replay is None:
        return None
    return {"from": replay.from_, "fraction": replay.fraction, "seed": replay.seed}


def plan_notes(spec: ProjectSpec) -> list[str]:
    """Lines the plan prints under its stages: whether retention runs (and why not), and what
    replay mixes in."""
    ret = retention_config(spec)
    if ret["enabled"]:
        by_tag = "".join(f", {t} <= {v:g}" for t, v in ret["max_drop_by_tag"].items())
        drift = f", drift <= {ret['max_drift']:g}" if ret["max_drift"] is not None else ""
        lines = [f"Retention: on ({ret['reason']}): {ret['suite']} on the base and the fine-tuned model, "
                 f"pass-rate drop <= {ret['max_drop']:g}{by_tag}{drift} ({ret['severity']})"]
    else:
        lines = [f"Retention: off ({ret['reason']})"]
    replay = spec.training.replay
    if replay is not None:
        origin = (f"the base model's answers to {replay.prompts}" if replay.from_base_model
                  else f"source '{replay.from_}'")
        lines.append(f"Replay: {replay.fraction:.0%} of the training set from {origin}, "
                     "in the train split only")
    return lines
