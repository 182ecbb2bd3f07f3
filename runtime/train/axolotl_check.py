"""Check a compiled config with Axolotl's own schema, and say which spec line is wrong.

Validation is Axolotl's: ``axolotl.utils.config.validate_config`` (the function
``axolotl train`` runs on a config), which builds ``AxolotlConfigWCapabilities`` — the
``AxolotlInputConfig`` schema plus its hardware checks. We hand it the capabilities of the
*target* hardware (from the spec), not of this machine, so a cuda config is judged as
it will be on the GPU box, and no GPU is needed here.

Offline: with torch >= 2.9 (we pin 2.13) nothing in 0.19's validators opens the model;
the one validator that would (MoE detection through ``AutoConfig``) only runs on older
torch and only when LoRA kernels are unset. Still, the Hub is switched to offline mode
before axolotl is imported, so an uncached hub id can never cause a download.
"""

from __future__ import annotations

import copy
import logging
import os
import re
from typing import TYPE_CHECKING, Any, Callable

from llmspec.spec.errors import Diagnostic, Pos
from llmspec.runtime.engine.offline import go_offline

if TYPE_CHECKING:
    from llmspec.compiler.axolotl_config import CompiledTraining

LOG = logging.getLogger(__name__)
CODE = "axolotl-config"


def axolotl_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("axolotl") is not None


def target_capabilities(compiled: "CompiledTraining") -> tuple[dict[str, Any], dict[str, Any]]:
    """What the run's hardware can do, as Axolotl's gpu_capabilities() would report it there."""
    import importlib.metadata

    try:
        torch_version = importlib.metadata.version("torch").split("+", 1)[0]
    except importlib.metadata.PackageNotFoundError:
        torch_version = "2.13.0"
    if compiled.hardware == "cpu":
        caps = {"bf16": False, "fp8": False, "tf32": False, "n_gpu": 1, "compute_capability": None}
    else:
        # Ampere or newer: what flash attention 2 and bf16 need; older cards fail at launch anyway.
        caps = {"bf16": True, "fp8": False, "tf32": True, "n_gpu": compiled.gpus, "compute_capability": "sm_80"}
    return caps, {"torch_version": torch_version}


def validate_axolotl_config(
    compiled: "CompiledTraining",
    locate: Callable[[tuple], Pos | None],
) -> list[Diagnostic]:
    """Axolotl's verdict on ``compiled.config`` as diagnostics at spec positions.

    Returns [] when the config is valid, or when axolotl is not installed (logged at debug:
    the compile still works, only this check is skipped).
    """
    if not axolotl_available():
        LOG.debug("axolotl is not installed: skipping validation of the compiled Axolotl config")
        return []
    go_offline()
    from pydantic import ValidationError

    from axolotl.utils.config import validate_config
    from axolotl.utils.dict import DictDefault

    caps, env_caps = target_capabilities(compiled)
    cfg = DictDefault(copy.deepcopy(compiled.config))  # validate_config rewrites datasets in place
    try:
        validate_config(cfg, capabilities=caps, env_capabilities=env_caps)
    except ValidationError as exc:
        return [_diagnostic(compiled, locate, err.get("loc", ()), _message(err)) for err in exc.errors()]
    except (ValueError, TypeError, KeyError, AttributeError) as exc:  # model validators raising outside pydantic
        return [_diagnostic(compiled, locate, (), str(exc))]
    return []


def _message(err: dict[str, Any]) -> str:
    msg = str(err.get("msg", "invalid value"))
    return msg[len("Value error, "):] if msg.startswith("Value error, ") else msg


def _key_in_message(compiled: "CompiledTraining", message: str) -> str | None:
    """Model-level validators name the keys they reject in prose; find one we emitted."""
    words = set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", message))
    user_keys = [k for k in compiled.origins if compiled.origins[k][:2] == ("training", "axolotl")]
    for key in user_keys + sorted(compiled.origins, key=len, reverse=True):
        if key in words:
            return key
    return None


def _locate_path(locate: Callable[[tuple], Pos | None], path: tuple) -> Pos | None:
    # A default the user never wrote has no line: fall back to the nearest written parent.
    for n in range(len(path), 0, -1):
        pos = locate(tuple(path[:n]))
        if pos is not None:
            return pos
    return None


def _diagnostic(compiled: "CompiledTraining", locate, loc: tuple, message: str) -> Diagnostic:
    key = str(loc[0]) if loc else _key_in_message(compiled, message)
    origin: tuple = compiled.origins.get(key, ()) if key else ()
    if not origin:
        # A key nobody emitted (renamed by a validator) is still most likely the user's raw keys.
        origin = ("training", "axolotl") if any(p[:2] == ("training", "axolotl")
                                                for p in compiled.origins.values()) else ("training",)
    if origin[:2] == ("training", "axolotl") and len(loc) > 1:
        origin = origin + tuple(loc[1:])
    where = ".".join(str(p) for p in loc) if loc else (key or "config")
    spec_path = ".".join(str(p) for p in origin)
    value_from = "your `training.axolotl` keys" if origin[:2] == ("training", "axolotl") else f"`{spec_path}`"
    return Diagnostic(
        code=CODE,
        message=f"Axolotl rejects `{where}` (set from {value_from}): {message}",
        pos=_locate_path(locate, origin) if origin else None,
        hint="this is Axolotl's own check (axolotl 0.19.0 schema); see `llmspec compile` output "
             "axolotl.yaml for the full config",
    )


__all__ = ["CODE", "axolotl_available", "target_capabilities", "validate_axolotl_config"]
