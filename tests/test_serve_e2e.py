"""`llmspec serve` on builtin:tiny, driven by the real `openai` client, and `llmspec test
--endpoint` against it."""

from __future__ import annotations

import json
import signal
import time
import xml.etree.ElementTree as ET
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from deploy_project import Server, applied_project, llmspec, wait_until

openai = pytest.importorskip("openai")  # a dev dependency: present wherever `make test` ran

pytestmark = pytest.mark.slow

KEY = "test-key-0123456789"
SYSTEM = "You are Acme's support assistant."


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    return applied_project(tmp_path_factory.mktemp("serve"))


@pytest.fixture(scope="module")
def server(project):
    srv = Server(project, "--api-key-env", "SERVE_KEY", env={"SERVE_KEY": KEY})
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=server.base_url, api_key=KEY, max_retries=0)


@pytest.fixture(scope="module")
def local_answer(project):
    """The promoted model's greedy answer, computed in this process without the server."""
    from llmspec.api import load_spec
    from llmspec.runtime.serve.target import resolve_run

    run = resolve_run(load_spec(project / "llmspec.yaml"))
    model = run.load(device="cpu")

    def answer(question: str, max_tokens: int) -> str:
        conv = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": question}]
        return model.generate([model.render(conv)], max_tokens)[0]

    return answer


def test_chat_answers_as_the_promoted_model_with_the_training_system_prompt(client, local_answer):
    raw = client.chat.completions.with_raw_response.create(
        model="deploy-bot", messages=[{"role": "user", "content": "How do I reset my router?"}], max_tokens=12)
    reply = raw.parse()
    assert raw.headers["x-request-id"] == reply.id and reply.id.startswith("chatcmpl-")
    assert reply.choices[0].message.content == local_answer("How do I reset my router?", 12)
    assert reply.choices[0].finish_reason in ("stop", "length")
    assert reply.usage.completion_tokens > 0 and reply.usage.prompt_tokens > 10


def test_streaming_sends_the_same_answer_in_pieces(client):
    messages = [{"role": "user", "content": "Where is my invoice?"}]
    whole = client.chat.completions.create(model="deploy-bot", messages=messages, max_tokens=16)
    stream = client.chat.completions.create(model="deploy-bot", messages=messages, max_tokens=16, stream=True,
                                            stream_options={"include_usage": True})
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    assert sum(1 for c in chunks if c.choices and c.choices[0].delta.content) > 1
    assert chunks[-1].usage.completion_tokens == whole.usage.completion_tokens


def test_completions_and_models_list(client):
    assert [m.id for m in client.models.list()] == ["deploy-bot"]
    out = client.completions.create(model="deploy-bot", prompt="Reset the router by", max_tokens=5)
    assert out.choices[0].finish_reason in ("stop", "length") and out.usage.prompt_tokens > 0


def test_wrong_or_missing_key_is_401(server):
    bad = openai.OpenAI(base_url=server.base_url, api_key="wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        bad.chat.completions.create(model="deploy-bot", messages=[{"role": "user", "content": "hi"}])
    with pytest.raises(openai.AuthenticationError):
        bad.models.list()
    missing = httpx.post(server.base_url + "/chat/completions", json={"messages": [{"role": "user", "content": "x"}]})
    assert missing.status_code == 401 and missing.json()["error"]["type"] == "authentication_error"
    assert httpx.get(server.url + "/health").json()["status"] == "ok"  # health needs no key


def test_bad_bodies_are_400_with_openai_error_objects(client, server):
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(model="deploy-bot", messages=[{"role": "user", "content": 5}])
    assert "messages" in str(err.value)
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="deploy-bot", messages=[{"role": "user", "content": "x"}],
                                       max_tokens=100_000)
    headers = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}
    for body in (b"{not json", b"[1, 2]", json.dumps({"messages": []}).encode(),
                 json.dumps({"messages": [{"role": "user", "content": "x"}], "temperature": "hot"}).encode()):
        r = httpx.post(server.base_url + "/chat/completions", content=body, headers=headers)
        assert r.status_code == 400, body
        assert set(r.json()["error"]) == {"message", "type", "param", "code"}
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}])


def test_oversized_body_is_413(server):
    headers = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}
    body = json.dumps({"messages": [{"role": "user", "content": "x" * (2 << 20)}]}).encode()
    r = httpx.post(server.base_url + "/chat/completions", content=body, headers=headers, timeout=60)
    assert r.status_code == 413 and r.json()["error"]["code"] == "body_too_large"


def test_fifty_concurrent_requests_are_all_answered_in_batches(client, server):
    before = httpx.get(server.url + "/health").json()["batches"]
    questions = [f"Question number {i}: how do I reset my router?" for i in range(50)]

    def ask(q):
        return client.chat.completions.create(model="deploy-bot", messages=[{"role": "user", "content": q}],
                                              max_tokens=8)

    with ThreadPoolExecutor(50) as pool:
        replies = list(pool.map(ask, questions))
    assert len(replies) == 50 and len({r.id for r in replies}) == 50
    assert all(r.choices[0].finish_reason in ("stop", "length") for r in replies)
    batches = httpx.get(server.url + "/health").json()["batches"] - before
    assert batches < 50, "requests sent together must share generate calls"


def test_past_the_queue_requests_get_429(project):
    srv = Server(project, "--max-queue", "2", "--max-batch", "1")
    try:
        client = openai.OpenAI(base_url=srv.base_url, api_key="none", max_retries=0)

        def ask(i):
            try:
                client.completions.create(model="deploy-bot", prompt=f"Tell me {i}", max_tokens=256)
                return 200
            except openai.RateLimitError:
                return 429

        with ThreadPoolExecutor(12) as pool:
            codes = list(pool.map(ask, range(12)))
        assert codes.count(429) > 0 and codes.count(200) >= 2
    finally:
        srv.stop()


def test_sigterm_finishes_requests_in_flight_then_exits(project):
    srv = Server(project)
    client = openai.OpenAI(base_url=srv.base_url, api_key="none", max_retries=0)
    stream = client.completions.create(model="deploy-bot", prompt="Tell me a long story", max_tokens=512,
                                       stream=True)
    pieces = iter(stream)
    first = next(pieces)
    srv.proc.send_signal(signal.SIGTERM)
    signalled = time.monotonic()
    rest = list(pieces)
    assert rest and rest[-1].choices[0].finish_reason in ("stop", "length")
    text = first.choices[0].text + "".join(c.choices[0].text for c in rest)
    assert text
    assert srv.proc.wait(60) == 0
    assert time.monotonic() - signalled < 60
    assert any("Stopped" in line for line in srv.lines)


def test_llmspec_test_endpoint_passes_and_writes_junit(project, server, tmp_path):
    junit = tmp_path / "endpoint.xml"
    proc = llmspec(["test", "llmspec.yaml", "--endpoint", server.url, "--api-key-env", "SERVE_KEY",
                    "--junit", str(junit), "--markdown", str(tmp_path / "endpoint.md")], project,
                   env={"SERVE_KEY": KEY})
    assert "all error gates pass" in proc.stdout
    suite = ET.parse(junit).getroot()
    assert suite.get("tests") == "2" and suite.get("failures") == "0"
    markdown = (tmp_path / "endpoint.md").read_text()
    assert "tests re-run, every error gate passes" in markdown and "`pass_rate`" in markdown
    wrong = llmspec(["test", "llmspec.yaml", "--endpoint", server.url, "--api-key-env", "SERVE_KEY"], project,
                    env={"SERVE_KEY": "nope"}, check=False)
    assert wrong.returncode != 0 and "401" in wrong.stderr and "Traceback" not in wrong.stderr
