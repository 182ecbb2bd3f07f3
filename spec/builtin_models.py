"""The built-in base models a spec may name (`base_model.id: builtin:NAME`): what validate,
the plan's estimates and the runtime's model resolver all agree on. Facts only, no weights:
the runtime (runtime/models/) builds or locates each one."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class BuiltinModel:
    id: str
    parameters: int          # for the plan's time and memory estimates, known without building it
    description: str


BUILTIN_MODELS: dict[str, BuiltinModel] = {
    m.id: m for m in (
        BuiltinModel("builtin:tiny", 205_120,
                     "a tiny Llama-architecture model built locally: for demos and tests, knows nothing"),
    )
}
