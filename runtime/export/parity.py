"""Parity: the exported model must answer the acceptance prompts as the adapter did when
trained. Both answer greedily, in float32 on the CPU (or the GPU's default dtype), with the same
prompt layout; the share of identical answers must reach the tolerance.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

DEFAULT_MIN_IDENTICAL = 1.0


@dataclass
class ParityResult:
    format: str
    prompts: int
    identical: int
    min_identical: float
    differing: list[dict[str, str]]

    @property
    def share(self) -> float:
        return self.identical / self.prompts if self.prompts else 1.0

    @property
    def passed(self) -> bool:
        return self.share >= self.min_identical

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "share_identical": self.share, "passed": self.passed}

    def summary(self) -> str:
        verdict = "PASS" if self.passed else "FAIL"
        return (f"parity {verdict}: {self.identical}/{self.prompts} acceptance prompts answered identically "
                f"by the {self.format} export and the adapter as trained "
                f"(needs >= {self.min_identical:.0%})")


def compare_answers(fmt: str, tests: Sequence[Any], reference: Sequence[str], exported: Sequence[str],
                    min_identical: float) -> ParityResult:
    differing = [{"test": t.name, "trained": a, "exported": b}
                 for t, a, b in zip(tests, reference, exported) if a != b]
    return ParityResult(format=fmt, prompts=len(tests), identical=len(tests) - len(differing),
                        min_identical=min_identical, differing=differing[:20])


def answers(tests: Sequence[Any], *, model_path: Path | str, adapter_path: Path | None, prompt_format: str,
            max_new_tokens: int, tokenizer_path: Path | None = None) -> list[str]:
    from llmspec.runtime.acceptance.runner import run_suite

    runs = run_suite(tests, model_path=model_path, adapter_path=adapter_path, tokenizer_path=tokenizer_path,
                     prompt_format=prompt_format, default_max_new_tokens=max_new_tokens)
    return [r.output for r in runs]


def gguf_answers(tests: Sequence[Any], path: Path, *, prompt_format: str, max_new_tokens: int) -> list[str]:
    """The answers of GGUF file ``path`` as transformers reads it back: its weights, its
    tokenizer and its chat template, nothing taken from the folder it was written from."""
    import torch

    from llmspec.runtime.acceptance.runner import LoadedModel
    from llmspec.runtime.models.gguf import load_gguf

    net, tokenizer = load_gguf(path)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model = LoadedModel(net.to(device).eval(), tokenizer, device, label=path.name, prompt_format=prompt_format)
    try:
        return [r.output for r in model.run(tests, default_max_new_tokens=max_new_tokens)]
    finally:
        model.close()
