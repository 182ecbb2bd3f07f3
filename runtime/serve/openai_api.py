"""The OpenAI request bodies `llmspec serve` accepts, as pydantic models.

Unknown fields are ignored (clients send many optional ones: ``user``, ``logprobs``...), wrong
types are errors. Only what changes the answer is read.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator


class _Loose(BaseModel):
    model_config = ConfigDict(extra="ignore")


class ContentPart(_Loose):
    type: Literal["text"]
    text: str


class Message(_Loose):
    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[ContentPart]

    def text(self) -> str:
        if isinstance(self.content, str):
            return self.content
        return "".join(p.text for p in self.content)


class StreamOptions(_Loose):
    include_usage: bool = False


class _Sampling(_Loose):
    model: str | None = None
    max_tokens: int | None = Field(None, ge=1)
    temperature: float = Field(0.0, ge=0.0, le=2.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    n: int = Field(1, ge=1, le=1)
    seed: int | None = None
    stop: str | list[str] | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None

    @field_validator("stop")
    @classmethod
    def _stops(cls, value):
        if isinstance(value, list) and len(value) > 4:
            raise ValueError("at most 4 stop sequences")
        return value

    def stops(self) -> tuple[str, ...]:
        if self.stop is None:
            return ()
        return (self.stop,) if isinstance(self.stop, str) else tuple(self.stop)


class ChatRequest(_Sampling):
    messages: list[Message] = Field(min_length=1)
    max_completion_tokens: int | None = Field(None, ge=1)

    def budget(self) -> int | None:
        return self.max_completion_tokens or self.max_tokens

    def conversation(self) -> list[dict[str, str]]:
        # "developer" is the newer name of the system role.
        return [{"role": "system" if m.role == "developer" else m.role, "content": m.text()}
                for m in self.messages]


class CompletionRequest(_Sampling):
    prompt: str | list[str]

    def budget(self) -> int | None:
        return self.max_tokens



class FeedbackRequest(_Loose):
    """POST /v1/feedback: a verdict on an answered exchange (its response ``id``)."""

    id: str = Field(min_length=1, max_length=200)
    rating: Literal["up", "down"] | None = None
    correction: str | None = Field(None, max_length=100_000)
    note: str | None = Field(None, max_length=10_000)
