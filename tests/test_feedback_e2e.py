"""The loop from production: `llmspec serve` logs what it answered, people post ratings and
corrections, `plan` shows the rebuild, `apply` trains on the corrections, and the corrected case
is an acceptance test the next model passes. Real openai client, real Axolotl, builtin:tiny."""

from __future__ import annotations

import io
import json
import sqlite3
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from ruamel.yaml import YAML

from deploy_project import REPO, Server, llmspec

openai = pytest.importorskip("openai")

pytestmark = pytest.mark.slow

SPEC = """\
llmspec: 1
project: loop-bot
base_model: {id: builtin:tiny}
sources:
  tickets:
    path: data/tickets.jsonl
    format: jsonl
    columns: {question: str, answer: str, product: "str?"}
  fb: {format: feedback}
quality:
  rules:
    - require: {columns: [question, answer], sources: [tickets]}
format:
  style: chat
  system: You are Acme's support assistant.
  map:
    tickets: {user: question, assistant: answer}
    fb: {user: prompt, assistant: answer}
split: {eval_fraction: 0.0}
training:
  method: lora
  learning_rate: 0.01
  max_steps: 60
  sequence_len: 128
  batch: {micro: 8, accumulate: 1}
  hardware: cpu
serve:
  log: {redact: true}
acceptance:
  max_new_tokens: 24
  tests_from: feedback
  tests:
    - {name: answers-something, prompt: How do I reset my router?, expect: [{max_chars: 2000}]}
"""

QUESTION = "What does the blinking orange light on the hub mean?"
CORRECTION = "The hub lost its internet connection. Restart the router, then the hub."


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("loop")
    (tmp / "data").mkdir()
    lines = (REPO / "examples/support-bot/data/tickets.jsonl").read_bytes().splitlines(keepends=True)
    # Three tickets and the corrections: builtin:tiny learns a one-off correction in 60 CPU steps
    # only when it is not one example among many (measured: 8 tickets, 40 steps did not).
    good = [line for line in lines if b"\"question\"" in line and b"\"answer\"" in line][:3]
    (tmp / "data/tickets.jsonl").write_bytes(b"".join(good))
    (tmp / "llmspec.yaml").write_text(SPEC)
    llmspec(["apply", "llmspec.yaml", "--yes"], tmp)
    return tmp


@pytest.fixture(scope="module")
def served(project):
    srv = Server(project)
    yield srv
    srv.stop()


def store_counts(project) -> tuple[int, int]:
    with sqlite3.connect(project / ".llmspec/feedback.sqlite") as db:
        return (db.execute("SELECT COUNT(*) FROM exchanges").fetchone()[0],
                db.execute("SELECT COUNT(*) FROM feedback").fetchone()[0])


def post_feedback(srv, **body) -> httpx.Response:
    return httpx.post(srv.base_url + "/feedback", json=body, timeout=60)


def test_exchanges_are_logged_with_their_id_and_feedback_is_taken(project, served):
    client = openai.OpenAI(base_url=served.base_url, api_key="none", max_retries=0)
    raw = client.chat.completions.with_raw_response.create(
        model="loop-bot", messages=[{"role": "user", "content": "Mail me at jane@example.com: is my order late?"}],
        max_tokens=8)
    reply = raw.parse()
    assert raw.headers["x-request-id"] == reply.id
    with sqlite3.connect(project / ".llmspec/feedback.sqlite") as db:
        messages, answer, run = db.execute("SELECT messages, answer, run FROM exchanges WHERE id = ?",
                                           (reply.id,)).fetchone()
    assert "jane@example.com" not in messages and "<EMAIL>" in messages  # serve.log.redact
    assert answer == reply.choices[0].message.content.replace("jane@example.com", "<EMAIL>")
    assert json.loads(messages)[0] == {"role": "system", "content": "You are Acme's support assistant."}
    state = json.loads((project / ".llmspec/state.json").read_text())
    assert run == state["promoted"]["run"]
    assert post_feedback(served, id=reply.id, rating="up").json()["status"] == "recorded"
    assert post_feedback(served, id="chatcmpl-unknown", rating="up").status_code == 404
    assert post_feedback(served, id=reply.id, rating="meh").status_code == 400
    assert post_feedback(served, id=reply.id).status_code == 400


def test_concurrent_requests_and_feedback_lose_no_record(project, served):
    client = openai.OpenAI(base_url=served.base_url, api_key="none", max_retries=0)
    before = store_counts(project)

    def exchange(i):
        reply = client.chat.completions.create(model="loop-bot", max_tokens=4,
                                               messages=[{"role": "user", "content": f"Question {i}?"}])
        return post_feedback(served, id=reply.id, rating="down", note=f"n{i}").status_code

    with ThreadPoolExecutor(24) as pool:
        codes = list(pool.map(exchange, range(40)))
    assert codes == [200] * 40
    after = store_counts(project)
    assert (after[0] - before[0], after[1] - before[1]) == (40, 40)


def test_correction_is_planned_trained_and_tested(project, served):
    client = openai.OpenAI(base_url=served.base_url, api_key="none", max_retries=0)
    reply = client.chat.completions.create(model="loop-bot", messages=[{"role": "user", "content": QUESTION}],
                                           max_tokens=24)
    assert post_feedback(served, id=reply.id, rating="down", correction=CORRECTION).status_code == 200

    listed = llmspec(["feedback", "llmspec.yaml", "list", "--rating", "corrected", "--json"], project).stdout
    assert [json.loads(line)["correction"] for line in listed.splitlines()] == [CORRECTION]
    shown = llmspec(["feedback", "llmspec.yaml", "show", reply.id], project).stdout
    assert QUESTION in shown and CORRECTION in shown
    # Thumbs-down so far: this correction, plus the other tests' when they ran first (xdist may order them).
    downs = llmspec(["feedback", "llmspec.yaml", "list", "--rating", "down", "--json"], project).stdout.splitlines()
    assert reply.id in {json.loads(line)["id"] for line in downs}
    exported = project / "feedback.jsonl"
    llmspec(["feedback", "llmspec.yaml", "export", "--rating", "down", "--out", str(exported)], project)
    assert sorted(json.loads(line)["id"] for line in exported.read_text().splitlines()) == \
        sorted(json.loads(line)["id"] for line in downs)

    plan = llmspec(["plan", "llmspec.yaml", "--detailed-exitcode"], project, check=False)
    assert plan.returncode == 2 and "sources.fb" in plan.stdout and "retrain" in plan.stdout
    llmspec(["apply", "llmspec.yaml", "--yes"], project, check=False)
    state = json.loads((project / ".llmspec/state.json").read_text())
    run = state["runs"][-1]["run"]
    report = json.loads((project / ".llmspec/runs" / run / "report.json").read_text())
    fb = report["sources"]["fb"]
    # 1 correction kept; every other rated exchange (thumbs-down without a correction, thumbs-up with
    # include_up off) rejected with its reason
    assert fb["rows_kept"] == 1 and fb["rows_in"] >= len(downs)
    assert fb["rejected"].get("feedback", 0) == fb["rows_in"] - 1  # none when this test ran first
    tests = {t["name"]: t for t in report["acceptance"]["tests"]}
    corrected = tests[f"feedback:{reply.id}"]
    assert corrected["passed"], corrected["output"]

    assert llmspec(["plan", "llmspec.yaml", "--detailed-exitcode"], project, check=False).returncode == 0
    client.chat.completions.create(model="loop-bot", messages=[{"role": "user", "content": "Hello?"}], max_tokens=4)
    # An exchange without feedback gives nothing new to learn: nothing to rebuild.
    assert llmspec(["plan", "llmspec.yaml", "--detailed-exitcode"], project, check=False).returncode == 0


def dpo_spec() -> str:
    """SPEC trained with DPO: the feedback pairs only (the tickets have no rejected answer)."""
    yaml = YAML(typ="safe", pure=True)
    spec = yaml.load(SPEC)
    del spec["sources"]["tickets"], spec["quality"]
    spec["format"]["map"] = {"fb": {"user": "prompt", "chosen": "answer", "rejected": "rejected"}}
    # DPO alone ranks the pair; the sft term makes the correction the answer (docs/spec-language.md)
    spec["training"].update(method="dpo", preference={"sft_weight": 1.0}, max_steps=40)
    del spec["acceptance"]["tests"]
    spec["acceptance"]["gates"] = {"pass_rate": ">= 0.0"}
    out = io.StringIO()
    yaml.dump(spec, out)
    return out.getvalue()


DPO_QUESTION = "Why is my invoice higher this month?"
DPO_CORRECTION = "Your plan renewed at the annual price. Open Billing to see each charge."


def test_correction_trains_with_dpo_against_what_the_model_said(project, served):
    """The DPO variant: the served model's answer is the rejected side of the pair, the
    correction the chosen one; `plan` shows the feedback source rebuilding, `apply` trains with
    Axolotl's DPO trainer, and the corrected case is an acceptance test of the new model."""
    client = openai.OpenAI(base_url=served.base_url, api_key="none", max_retries=0)
    reply = client.chat.completions.create(model="loop-bot", messages=[{"role": "user", "content": DPO_QUESTION}],
                                           max_tokens=24)
    said = reply.choices[0].message.content
    assert post_feedback(served, id=reply.id, rating="down", correction=DPO_CORRECTION).status_code == 200

    (project / "llmspec.yaml").write_text(dpo_spec())
    plan = llmspec(["plan", "llmspec.yaml", "--detailed-exitcode"], project, check=False)
    # sources.fb's config is the same in both specs: it rebuilds because feedback arrived
    assert plan.returncode == 2 and "sources.fb" in plan.stdout and "retrain" in plan.stdout
    llmspec(["apply", "llmspec.yaml", "--yes"], project, check=False)
    state = json.loads((project / ".llmspec/state.json").read_text())
    run_dir = project / ".llmspec/runs" / state["runs"][-1]["run"]
    report = json.loads((run_dir / "report.json").read_text())

    pairs = [json.loads(line) for line in (run_dir / "dataset" / "train.jsonl").read_text().splitlines()]
    mine = next(p for p in pairs if p["messages"][-1]["content"] == DPO_QUESTION)
    assert mine["chosen"] == DPO_CORRECTION and mine["rejected"] == said
    config = (run_dir / "train" / "axolotl.yaml").read_text()
    assert "rl: dpo" in config and "type: chat_template.default" in config
    # Axolotl ran TRL's DPO trainer: it logged the pair rewards, and the chosen answers won
    training = report["training"]
    assert training["rl"] == "dpo" and training["preference"]["rewards/margins"] > 0
    assert "rewards/chosen" in (run_dir / "train" / "train.log").read_text()

    corrected = next(t for t in report["acceptance"]["tests"] if t["name"] == f"feedback:{reply.id}")
    assert corrected["passed"], corrected["output"]
    section = report["feedback"]
    assert section["sources"]["fb"]["by_rating"].get("corrected", 0) >= 1
    fixed = next(t for t in section["tests"] if t["name"] == f"feedback:{reply.id}")
    assert fixed["passed"] and fixed["correction"] == DPO_CORRECTION
    assert "Feedback from `llmspec serve`" in (run_dir / "report.md").read_text()
