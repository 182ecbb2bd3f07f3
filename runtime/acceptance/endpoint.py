"""The acceptance suite against a deployed model: any OpenAI-compatible endpoint (`llmspec
serve`, vLLM, Ollama...). Same tests, same judging code (``Answerer``), greedy answers
(temperature 0); only where the answers come from differs.

Chat-style runs are asked through /v1/chat/completions with the conversation, so the endpoint's
own chat template is what is tested; alpaca and completion runs through /v1/completions with
the prompt laid out as training laid it out. Perplexity assertions cannot be judged over the
API (no reference scoring) and report that they could not be evaluated.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any, Sequence

from llmspec.spec.errors import Diagnostic, LlmspecError, Pos

from .runner import ALPACA_SYSTEM, ALPACA_TURN, Answerer, PromptFormat

TIMEOUT_S = 300.0


class EndpointModel(Answerer):
    """Answers through an OpenAI-compatible HTTP API. ``base_url`` ends in /v1 (added when
    missing). ``model``: the id to send (default: the first one /v1/models lists)."""

    def __init__(self, base_url: str, *, model: str | None = None, api_key: str | None = None,
                 prompt_format: PromptFormat = "chat", concurrency: int = 8):
        import httpx

        url = base_url.rstrip("/")
        self.base_url = url if url.endswith("/v1") else url + "/v1"
        self.label = self.base_url
        self.prompt_format = prompt_format
        self.concurrency = concurrency
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.client = httpx.Client(base_url=self.base_url, headers=headers, timeout=TIMEOUT_S)
        self.model = model or self._first_model()

    def _request(self, method: str, path: str, **kwargs) -> dict[str, Any]:
        import httpx

        try:
            response = self.client.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise _endpoint_error(f"cannot reach {self.base_url}{path}: {type(exc).__name__}: {exc}",
                                  self.base_url, hint="is the server running? (llmspec serve SPEC)") from None
        if response.status_code == 401:
            raise _endpoint_error(f"{self.base_url} refused the API key (401)", self.base_url,
                                  hint="pass --api-key-env NAME with the key in $NAME")
        if response.status_code >= 400:
            raise _endpoint_error(f"{self.base_url}{path} answered {response.status_code}: "
                                  f"{response.text[:300]}", self.base_url)
        try:
            return response.json()
        except ValueError:
            raise _endpoint_error(f"{self.base_url}{path} did not answer JSON", self.base_url) from None

    def _first_model(self) -> str:
        data = self._request("GET", "/models").get("data") or []
        if not data:
            raise _endpoint_error(f"{self.base_url}/models lists no model", self.base_url,
                                  hint="name one with --model")
        return str(data[0]["id"])

    def render(self, conversation: list[dict[str, str]]) -> Any:
        if self.prompt_format == "chat":
            return conversation
        turns = [m for m in conversation if m["role"] != "system"]
        if len(turns) != 1 or turns[0]["role"] != "user":
            raise _endpoint_error(f"a {self.prompt_format}-style model answers single prompts, not "
                                  "conversations", self.base_url, hint="holdout tests need the chat style")
        text = turns[0]["content"]
        if self.prompt_format == "alpaca":
            text = f"{ALPACA_SYSTEM}\n\n" + ALPACA_TURN.format(instruction=text)
        return text

    def _answer(self, prompt: Any, max_tokens: int) -> str:
        body = {"model": self.model, "max_tokens": max_tokens, "temperature": 0, "n": 1}
        if self.prompt_format == "chat":
            out = self._request("POST", "/chat/completions", json={**body, "messages": prompt})
            return out["choices"][0]["message"].get("content") or ""
        out = self._request("POST", "/completions", json={**body, "prompt": prompt})
        return out["choices"][0].get("text") or ""

    def generate(self, prompts: Sequence[Any], max_new_tokens: int) -> list[str]:
        with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            return list(pool.map(lambda p: self._answer(p, max_new_tokens), prompts))

    def close(self) -> None:
        self.client.close()


def _endpoint_error(message: str, where: str, hint: str | None = None) -> LlmspecError:
    return LlmspecError(Diagnostic("endpoint", message, Pos(where), hint=hint))
