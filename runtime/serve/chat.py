"""A conversation with a trained model in this process: the run's system prompt and chat
template (``LoadedModel.render``), tokens streamed as they are generated (``answer_batch``),
and the base model's answer to the same conversation when asked (same weights, adapter off).
"""

from __future__ import annotations

from typing import Any, Callable

from .batcher import Generation, answer_batch


class ChatSession:
    """Turns so far and the model that answers them. ``model``: a ``LoadedModel``;
    ``base``: one for the base model when it is not the same weights with the adapter off."""

    def __init__(self, model: Any, *, system: str | None, max_tokens: int = 256, temperature: float = 0.0,
                 base: Any = None):
        self.model = model
        self.base = base
        self.system = system
        self.max_tokens = max_tokens
        self.temperature = temperature
        self.turns: list[dict[str, str]] = []

    def conversation(self, user: str) -> list[dict[str, str]]:
        head = [{"role": "system", "content": self.system}] if self.system else []
        return head + self.turns + [{"role": "user", "content": user}]

    def _answer(self, model: Any, conversation: list[dict[str, str]], on_delta) -> str:
        gen = Generation(prompt_ids=model.render(conversation), max_tokens=self.max_tokens,
                         temperature=self.temperature, on_delta=on_delta)
        with model.threads():
            answer_batch(model, [gen])
        if gen.error:
            from llmspec.spec.errors import Diagnostic, LlmspecError

            raise LlmspecError(Diagnostic("generate", f"the model failed to answer: {gen.error}"))
        return gen.text

    def ask(self, user: str, on_delta: Callable[[str], None] | None = None, *, compare: bool = False,
            on_base_delta: Callable[[str], None] | None = None) -> tuple[str, str | None]:
        """(the model's answer, the base model's answer to the same conversation when
        ``compare``). The exchange (with the tuned answer) joins the conversation."""
        conversation = self.conversation(user)
        answer = self._answer(self.model, conversation, on_delta)
        base_answer = None
        if compare:
            if self.base is not None:
                base_answer = self._answer(self.base, conversation, on_base_delta)
            else:
                with self.model.adapter_disabled():
                    base_answer = self._answer(self.model, conversation, on_base_delta)
        self.turns += [{"role": "user", "content": user}, {"role": "assistant", "content": answer}]
        return answer, base_answer

    def reset(self) -> None:
        self.turns.clear()
