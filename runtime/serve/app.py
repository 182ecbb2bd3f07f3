"""The OpenAI-compatible HTTP API of `llmspec serve` (FastAPI), over a ``Batcher``.

Safe by default: the caller binds 127.0.0.1; with an API key, every /v1 route needs
``Authorization: Bearer <key>`` (compared in constant time); bodies over ``max_body`` bytes are
refused with 413 before they are read in full; ``max_tokens`` over the cap, malformed JSON and
wrong types are 400s; a full queue is 429. Errors are OpenAI error objects.

No ``from __future__ import annotations`` here: FastAPI reads the routes' annotations at
definition time, and ``Request`` is imported inside ``create_app`` (fastapi is imported only
when a server starts).
"""


import asyncio
import hmac
import json
import time
import uuid
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError

from llmspec.spec.errors import LlmspecError

from .batcher import Batcher, Generation, QueueFull
from .openai_api import ChatRequest, CompletionRequest, FeedbackRequest


@dataclass(frozen=True)
class ServeSettings:
    model_name: str            # the id clients send as "model" and /v1/models lists
    run: str
    system: str | None         # put in front of a conversation that has no system message
    api_key: str | None = None
    max_body: int = 1 << 20    # bytes
    max_tokens: int = 512      # cap on a request's max_tokens
    default_max_tokens: int = 128
    max_prompt_tokens: int = 4096


class ApiError(Exception):
    def __init__(self, status: int, message: str, *, type_: str = "invalid_request_error",
                 param: str | None = None, code: str | None = None, headers: dict | None = None):
        super().__init__(message)
        self.status, self.message, self.type, self.param, self.code = status, message, type_, param, code
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


def create_app(batcher: Batcher, model: Any, settings: ServeSettings, log: Any = None):
    """The FastAPI app. ``model``: the ``LoadedModel`` whose tokenizer renders prompts.
    ``log``: the interaction log (``runtime.feedback.log.InteractionLog``) every answered
    exchange is written to, and POST /v1/feedback writes ratings to; None turns both off."""
    from fastapi import FastAPI, Request
    from fastapi.responses import JSONResponse, StreamingResponse

    app = FastAPI(title="llmspec serve", docs_url=None, redoc_url=None, openapi_url=None)

    @app.exception_handler(ApiError)
    async def _api_error(_request, exc: ApiError):
        return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers)

    def authorize(request: Request) -> None:
        if settings.api_key is None:
            return
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(),
                                                                  settings.api_key.encode()):
            raise ApiError(401, "invalid or missing API key (send Authorization: Bearer <key>)",
                           type_="authentication_error", code="invalid_api_key")

    async def parse(request: Request, schema: type[BaseModel]) -> Any:
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > settings.max_body:
            raise ApiError(413, f"request body over {settings.max_body} bytes", code="body_too_large")
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > settings.max_body:
                raise ApiError(413, f"request body over {settings.max_body} bytes", code="body_too_large")
            chunks.append(chunk)
        try:
            raw = json.loads(b"".join(chunks) or b"null")
        except ValueError as exc:
            raise ApiError(400, f"the body is not valid JSON: {exc}", code="invalid_json") from None
        if not isinstance(raw, dict):
            raise ApiError(400, "the body must be a JSON object", code="invalid_json")
        try:
            return schema.model_validate(raw)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise ApiError(400, f"{where}: {first['msg']}", param=where or None,
                           code="invalid_value") from None

    def check_model(body) -> None:
        if body.model not in (None, "", settings.model_name, settings.run):
            raise ApiError(404, f"the model '{body.model}' does not exist; this server has "
                           f"'{settings.model_name}'", code="model_not_found")

    def budget(body) -> int:
        asked = body.budget()
        if asked is not None and asked > settings.max_tokens:
            raise ApiError(400, f"max_tokens {asked} is over this server's cap of {settings.max_tokens}",
                           param="max_tokens", code="max_tokens_too_large")
        return asked or settings.default_max_tokens

    async def start(prompt_ids: list[int], body, max_tokens: int) -> Generation:
        if len(prompt_ids) > settings.max_prompt_tokens:
            raise ApiError(400, f"the prompt has {len(prompt_ids)} tokens, over this server's "
                           f"cap of {settings.max_prompt_tokens}", code="context_length_exceeded")
        gen = Generation(prompt_ids=prompt_ids, max_tokens=max_tokens, temperature=body.temperature,
                         top_p=body.top_p, seed=body.seed, stop=body.stops(), stream=body.stream,
                         loop=asyncio.get_running_loop(), events=asyncio.Queue())
        try:
            return batcher.submit(gen)
        except QueueFull as exc:
            raise ApiError(429, f"the server is busy ({exc}); retry shortly", type_="rate_limit_error",
                           code="queue_full", headers={"Retry-After": "1"}) from None

    async def wait(gen: Generation) -> None:
        while True:
            kind, value = await gen.events.get()
            if kind == "error":
                raise ApiError(500, f"generation failed: {value}", type_="server_error")
            if kind == "done":
                return

    def usage(gen: Generation) -> dict[str, int]:
        return {"prompt_tokens": len(gen.prompt_ids), "completion_tokens": len(gen.ids),
                "total_tokens": len(gen.prompt_ids) + len(gen.ids)}

    async def record(rid: str, kind: str, conversation, gen: Generation, started: float) -> None:
        if log is not None:
            # SQLite or PostgreSQL I/O off the event loop; the store serialises its writes.
            await asyncio.to_thread(log.log_exchange, {
                "id": rid, "kind": kind, "run": settings.run, "messages": conversation, "answer": gen.text,
                "latency_s": time.perf_counter() - started, "prompt_tokens": len(gen.prompt_ids),
                "completion_tokens": len(gen.ids), "finish_reason": gen.finish_reason})

    @app.get("/health")
    async def health():
        return {"status": "ok", "model": settings.model_name, "run": settings.run,
                "queued": batcher.pending, "batches": batcher.batches}

    @app.get("/v1/models")
    async def models(request: Request):
        authorize(request)
        return {"object": "list", "data": [{"id": settings.model_name, "object": "model",
                                            "created": 0, "owned_by": "llmspec", "run": settings.run}]}

    @app.post("/v1/chat/completions")
    async def chat(request: Request):
        authorize(request)
        body: ChatRequest = await parse(request, ChatRequest)
        check_model(body)
        conversation = body.conversation()
        if settings.system and conversation[0]["role"] != "system":
            conversation.insert(0, {"role": "system", "content": settings.system})
        try:
            # On the loop, not in a thread: the template is ~0.1 ms of GIL-bound Python, so a
            # thread would not run it alongside anything, only add a thread wake-up per request.
            prompt_ids = model.render(conversation)
        except LlmspecError as exc:  # a template (or alpaca layout) that rejects this conversation
            raise ApiError(400, exc.diagnostics[0].message, param="messages",
                           code="bad_conversation") from None
        max_tokens = budget(body)
        started = time.perf_counter()
        gen = await start(prompt_ids, body, max_tokens)
        rid = f"chatcmpl-{uuid.uuid4().hex}"
        created = int(time.time())
        headers = {"X-Request-Id": rid}

        def chunk(delta: dict, finish: str | None, use: dict | None = None) -> str:
            payload = {"id": rid, "object": "chat.completion.chunk", "created": created,
                       "model": settings.model_name,
                       "choices": [] if use is not None else
                       [{"index": 0, "delta": delta, "finish_reason": finish}]}
            if use is not None:
                payload["usage"] = use
            return f"data: {json.dumps(payload)}\n\n"

        if body.stream:
            async def events():
                yield chunk({"role": "assistant", "content": ""}, None)
                while True:
                    kind, value = await gen.events.get()
                    if kind == "delta":
                        yield chunk({"content": value}, None)
                    elif kind == "error":
                        yield f"data: {json.dumps(ApiError(500, value, type_='server_error').body())}\n\n"
                        break
                    else:
                        yield chunk({}, gen.finish_reason)
                        if body.stream_options and body.stream_options.include_usage:
                            yield chunk({}, None, usage(gen))
                        await record(rid, "chat", conversation, gen, started)
                        break
                yield "data: [DONE]\n\n"

            return StreamingResponse(events(), media_type="text/event-stream", headers=headers)
        await wait(gen)
        await record(rid, "chat", conversation, gen, started)
        return JSONResponse({"id": rid, "object": "chat.completion", "created": created,
                             "model": settings.model_name,
                             "choices": [{"index": 0, "message": {"role": "assistant", "content": gen.text},
                                          "finish_reason": gen.finish_reason, "logprobs": None}],
                             "usage": usage(gen)}, headers=headers)

    @app.post("/v1/completions")
    async def completions(request: Request):
        authorize(request)
        body: CompletionRequest = await parse(request, CompletionRequest)
        check_model(body)
        prompts = [body.prompt] if isinstance(body.prompt, str) else body.prompt
        if len(prompts) != 1:
            raise ApiError(400, "give one prompt per request", param="prompt")
        prompt_ids = list(model.tokenizer(prompts[0])["input_ids"])
        max_tokens = budget(body)
        started = time.perf_counter()
        gen = await start(prompt_ids, body, max_tokens)
        rid = f"cmpl-{uuid.uuid4().hex}"
        created = int(time.time())
        headers = {"X-Request-Id": rid}

        def chunk(text: str, finish: str | None) -> str:
            return "data: " + json.dumps({"id": rid, "object": "text_completion", "created": created,
                                          "model": settings.model_name,
                                          "choices": [{"index": 0, "text": text, "finish_reason": finish,
                                                       "logprobs": None}]}) + "\n\n"

        if body.stream:
            async def events():
                while True:
                    kind, value = await gen.events.get()
                    if kind == "delta":
                        yield chunk(value, None)
                    elif kind == "error":
                        yield f"data: {json.dumps(ApiError(500, value, type_='server_error').body())}\n\n"
                        break
                    else:
                        yield chunk("", gen.finish_reason)
                        await record(rid, "completion", [{"role": "user", "content": prompts[0]}], gen, started)
                        break
                yield "data: [DONE]\n\n"

            return StreamingResponse(events(), media_type="text/event-stream", headers=headers)
        await wait(gen)
        await record(rid, "completion", [{"role": "user", "content": prompts[0]}], gen, started)
        return JSONResponse({"id": rid, "object": "text_completion", "created": created,
                             "model": settings.model_name,
                             "choices": [{"index": 0, "text": gen.text, "finish_reason": gen.finish_reason,
                                          "logprobs": None}],
                             "usage": usage(gen)}, headers=headers)

    @app.post("/v1/feedback")
    async def feedback(request: Request):
        authorize(request)
        body: FeedbackRequest = await parse(request, FeedbackRequest)
        if log is None:
            raise ApiError(404, "this server keeps no interaction log (serve.log.enabled: false), so it "
                           "takes no feedback", code="logging_disabled")
        if body.rating is None and not body.correction and not body.note:
            raise ApiError(400, "give a rating (up or down), a correction or a note", param="rating")
        found = await asyncio.to_thread(log.add_feedback, body.id, rating=body.rating,
                                        correction=body.correction, note=body.note)
        if not found:
            raise ApiError(404, f"no exchange has the id '{body.id}'", param="id", code="unknown_id")
        return {"id": body.id, "object": "feedback", "status": "recorded"}

    return app
