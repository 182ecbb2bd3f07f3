"""The acceptance suite builder, and the runner on the untrained ``builtin:tiny`` model."""

from __future__ import annotations

import json
import math

import pytest

from llmspec.runtime.acceptance.assertions import SimilarArg, parse_expectation
from llmspec.compiler.acceptance import (SuiteTest, build_suite, suite_from_json,
                                              suite_to_json)
from llmspec.spec.errors import LlmspecError
from llmspec.spec.models import AcceptanceSpec

SYSTEM = "You are the Acme support assistant."


def _spec(**kw) -> AcceptanceSpec:
    return AcceptanceSpec.model_validate(kw)


def _write_lines(path, lines):
    path.write_text("\n".join(json.dumps(x) if not isinstance(x, str) else x for x in lines) + "\n")


# --------------------------------------------------------------------------- suite

def test_inline_tests_get_system_prompt_and_token_budget():
    spec = _spec(max_new_tokens=20, tests=[
        {"name": "refund", "prompt": "Can I get a refund?", "expect": [{"icontains": "refund"}],
         "tags": ["refunds"]},
        {"name": "own", "prompt": "Hi", "expect": [{"max_chars": 10}], "system": "Be brief.",
         "max_new_tokens": 5},
    ])
    refund, own = build_suite(spec, base_dir=".", system=SYSTEM)
    assert refund.prompt == "Can I get a refund?" and refund.tags == ("refunds",)
    assert refund.expectations == (parse_expectation({"icontains": "refund"}),)
    assert refund.max_new_tokens == 20 and refund.system == SYSTEM
    assert refund.conversation() == [{"role": "system", "content": SYSTEM},
                                     {"role": "user", "content": "Can I get a refund?"}]
    assert own.max_new_tokens == 5 and own.conversation()[0]["content"] == "Be brief."
    plain = build_suite(spec, base_dir=".", system=None)[0]
    assert plain.conversation() == [{"role": "user", "content": "Can I get a refund?"}]


def test_tests_from_file(tmp_path):
    _write_lines(tmp_path / "golden.jsonl", [
        {"name": "hours", "prompt": "When are you open?", "expect": [{"contains": "Monday"}],
         "tags": ["hours"]},
        "",
        {"prompt": "How do I reset my password?", "answer": "Click Forgot password."},
    ])
    spec = _spec(tests=[{"name": "a", "prompt": "p", "expect": [{"contains": "x"}]}],
                 tests_from="golden.jsonl")
    a, hours, answer = build_suite(spec, tmp_path, system=SYSTEM)
    assert a.name == "a"
    assert hours.name == "hours" and hours.tags == ("hours",) and hours.system == SYSTEM
    assert hours.source == "golden.jsonl:1"
    # no name: the file and line; an answer without expect: similar >= 0.5
    assert answer.name == "golden.jsonl:3" and answer.source == "golden.jsonl:3"
    [exp] = answer.expectations
    assert exp.kind == "similar"
    assert exp.arg == SimilarArg(reference="Click Forgot password.", threshold=0.5,
                                 metric="rouge_l")


@pytest.mark.parametrize("bad_line, words", [
    ('{"prompt": "hi", "expect": [{"contain": "x"}]}', ["unknown assertion", "contains"]),
    ('{"prompt": "hi", "expect": [{"contains": "x"}]', ["not valid JSON"]),
    ('{"expect": [{"contains": "x"}]}', ["prompt"]),
    ('{"prompt": "hi"}', ["neither expect nor answer"]),
    ('{"prompt": "hi", "answer": "x", "tag": ["a"]}', ["unknown key", "'tag'"]),
    ('["prompt"]', ["JSON object"]),
])
def test_tests_from_bad_line_names_file_and_line(tmp_path, bad_line, words):
    good = json.dumps({"prompt": "ok", "answer": "fine"})
    (tmp_path / "t.jsonl").write_text(f"{good}\n\n{bad_line}\n{good}\n")
    with pytest.raises(LlmspecError) as info:
        build_suite(_spec(tests_from="t.jsonl"), tmp_path, system=None)
    diag = info.value.first
    assert diag.pos.path == "t.jsonl" and diag.pos.line == 3
    assert "t.jsonl:3" in info.value.render()
    for word in words:
        assert word in diag.message


def test_tests_from_missing_file(tmp_path):
    with pytest.raises(LlmspecError, match="nope.jsonl does not exist"):
        build_suite(_spec(tests_from="nope.jsonl"), tmp_path, system=None)


def test_duplicate_names_across_sources(tmp_path):
    _write_lines(tmp_path / "t.jsonl", [{"name": "a", "prompt": "p", "answer": "x"}])
    spec = _spec(tests=[{"name": "a", "prompt": "p", "expect": [{"contains": "x"}]}],
                 tests_from="t.jsonl")
    with pytest.raises(LlmspecError, match="'a' is used twice"):
        build_suite(spec, tmp_path, system=None)


def _chat(user: str, answer: str, system: str | None = SYSTEM) -> dict:
    messages = [{"role": "user", "content": user}, {"role": "assistant", "content": answer}]
    return {"messages": ([{"role": "system", "content": system}] if system else []) + messages}


def test_holdout_takes_first_count_eval_records():
    records = [
        _chat("Where is my order?", "It ships on Monday."),
        {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"},
                      {"role": "user", "content": "Refund?"},
                      {"role": "assistant", "content": "Within thirty days."}]},
        _chat("unused", "unused"),
    ]
    spec = _spec(holdout={"count": 2, "metric": "token_f1", "threshold": 0.4})
    first, second = build_suite(spec, ".", system=SYSTEM, eval_records=records)
    assert first.name == "holdout-001" and first.tags == ("holdout",) and first.prompt is None
    # the record's own system turn is kept and not doubled
    assert first.conversation() == records[0]["messages"][:2]
    assert first.display_prompt == "Where is my order?"
    [exp] = first.expectations
    assert exp.arg == SimilarArg(reference="It ships on Monday.", threshold=0.4, metric="token_f1")
    # multi-turn: everything before the last assistant turn; the spec's system prompt added
    assert second.conversation() == [{"role": "system", "content": SYSTEM}] + \
        records[1]["messages"][:3]
    assert second.expectations[0].arg.reference == "Within thirty days."
    assert second.display_prompt == "user: Hi\nassistant: Hello!\nuser: Refund?"


def test_holdout_with_fewer_records_and_non_chat_records():
    spec = _spec(holdout={"count": 5})
    assert len(build_suite(spec, ".", system=None, eval_records=[_chat("q", "a")])) == 1
    assert build_suite(spec, ".", system=None, eval_records=None) == []
    with pytest.raises(LlmspecError, match="eval record 1 is not one"):
        build_suite(spec, ".", system=None, eval_records=[{"instruction": "x", "output": "y"}])
    with pytest.raises(LlmspecError, match="no assistant answer"):
        build_suite(spec, ".", system=None,
                    eval_records=[{"messages": [{"role": "user", "content": "q"}]}])


def test_suite_json_round_trip(tmp_path):
    spec = _spec(tests=[{"name": "j", "prompt": "json please",
                         "expect": [{"json_schema": {"type": "object"}},
                                    {"not_contains": "sorry", "weight": 2}]}],
                 holdout={"count": 1})
    suite = build_suite(spec, tmp_path, system=SYSTEM, eval_records=[_chat("q", "a")])
    data = suite_to_json(suite)
    assert json.loads(json.dumps(data)) == data
    assert data[0]["expect"] == [{"json_schema": {"type": "object"}},
                                 {"not_contains": "sorry", "weight": 2.0}]
    assert "messages" in data[1] and "prompt" not in data[1]
    assert suite_from_json(data) == suite


# --------------------------------------------------------------------------- runner on builtin:tiny

from llmspec.runtime.acceptance.runner import (  # noqa: E402
    AcceptanceResult, LoadedModel, ModelRef, junit_cases, load_model, offline_environment,
    run_acceptance, run_suite)
from llmspec.runtime.models.tinymodel import resolve_builtin  # noqa: E402

offline_environment()  # before transformers is imported, as the runner itself does
torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
peft = pytest.importorskip("peft")

PROMPTS = ["How do I reset my password?", "Can I get a refund?", "hi",
           "What are your opening hours? When can I call you? I moved to a new house."]


def _tests(n_tokens: int = 12) -> list[SuiteTest]:
    expect = (parse_expectation({"not_contains": "zzzz"}),
              parse_expectation({"perplexity": {"reference": "We offer a full refund.",
                                                "max": 1e9}}))
    return [SuiteTest(name=f"t{i}", prompt=p, expectations=expect, system=SYSTEM,
                      max_new_tokens=n_tokens if i != 2 else n_tokens + 3)
            for i, p in enumerate(PROMPTS)]


@pytest.fixture(scope="module")
def tiny():
    return resolve_builtin("builtin:tiny")


@pytest.fixture(scope="module")
def tiny_model(tiny) -> LoadedModel:
    return load_model(tiny, device="cpu")


@pytest.fixture(scope="module")
def adapter_dir(tiny, tmp_path_factory):
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(str(tiny))
    # init_lora_weights=False: random B, so the adapter really changes the answers (the
    # default zero B would make it invisible and the test unable to tell it was applied).
    config = peft.LoraConfig(r=4, lora_alpha=16, target_modules=["q_proj", "v_proj"],
                             init_lora_weights=False)
    torch.manual_seed(0)
    out = tmp_path_factory.mktemp("adapter")
    peft.get_peft_model(base, config).save_pretrained(str(out))
    return out


def test_runner_generates_deterministically(tiny, tiny_model):
    first = tiny_model.run(_tests(), batch_size=4)
    again = run_suite(_tests(), model_path=tiny, adapter_path=None, device="cpu")
    assert [r.name for r in first] == ["t0", "t1", "t2", "t3"]
    assert [r.output for r in first] == [r.output for r in again]
    assert all(r.output for r in first)  # an untrained model babbles, but it does answer
    assert all(r.prompt == p for r, p in zip(first, PROMPTS))
    assert all(r.duration > 0 for r in first)


def test_batched_answers_equal_one_at_a_time(tiny_model):
    batched = tiny_model.run(_tests(), batch_size=8)
    single = tiny_model.run(_tests(), batch_size=1)
    assert [r.output for r in batched] == [r.output for r in single]


def test_only_new_tokens_are_decoded_and_budget_holds(tiny_model):
    [run] = tiny_model.run(_tests(4)[:1])
    ids = tiny_model.tokenizer(run.output, add_special_tokens=False)["input_ids"]
    assert len(ids) <= 4
    assert "<|im_start|>" not in run.output and PROMPTS[0] not in run.output


def test_prompt_goes_through_chat_template_with_system(tiny_model):
    test = _tests()[0]
    text = tiny_model.tokenizer.decode(tiny_model.render(test.conversation()))
    assert text == (f"<|im_start|>system\n{SYSTEM}<|im_end|>\n"
                    f"<|im_start|>user\n{PROMPTS[0]}<|im_end|>\n<|im_start|>assistant\n")


def test_alpaca_and_completion_prompts_use_training_layout(tiny_model):
    from llmspec.runtime.acceptance.runner import prompt_format_for_style

    test = _tests()[0]
    alpaca = LoadedModel(tiny_model.model, tiny_model.tokenizer, "cpu", label="tiny",
                         prompt_format=prompt_format_for_style("alpaca"))
    assert tiny_model.tokenizer.decode(alpaca.render(test.conversation())) == (
        "Below is an instruction that describes a task. Write a response that appropriately "
        f"completes the request.\n\n### Instruction:\n{PROMPTS[0]}\n\n### Response:\n")
    completion = LoadedModel(tiny_model.model, tiny_model.tokenizer, "cpu", label="tiny",
                             prompt_format=prompt_format_for_style("input_output"))
    assert tiny_model.tokenizer.decode(completion.render(test.conversation())) == PROMPTS[0]
    [run] = completion.run([test])
    assert run.output
    multi = [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"},
             {"role": "user", "content": "c"}]
    with pytest.raises(LlmspecError, match="not conversations"):
        alpaca.render(multi)


def test_perplexity_is_finite_and_above_one(tiny_model):
    ppl = tiny_model.perplexity([{"role": "user", "content": "Can I get a refund?"}],
                                "We offer a full refund within thirty days.")
    assert math.isfinite(ppl) and ppl > 1
    # an untrained model is close to uniform over its 1024 tokens
    assert 100 < ppl < 10_000
    [run] = tiny_model.run(_tests()[:1])
    ppl_result = run.outcome.results[1]
    assert ppl_result.kind == "perplexity" and ppl_result.error is None
    assert math.isfinite(ppl_result.value) and ppl_result.value > 1 and run.outcome.passed


def test_generation_stops_at_end_of_turn(tiny):
    # A stand-in model that answers with fixed ids, to pin down where the answer is cut.
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(tiny))
    words = tok("Thank you", add_special_tokens=False)["input_ids"]
    im_end = tok.convert_tokens_to_ids("<|im_end|>")
    more = tok("ignored", add_special_tokens=False)["input_ids"]

    class Fixed:
        generation_config = None

        def generate(self, input_ids, attention_mask, generation_config):
            assert generation_config.do_sample is False
            assert im_end in generation_config.eos_token_id
            tail = torch.tensor([words + [im_end] + more] * input_ids.shape[0])
            return torch.cat([input_ids, tail], dim=1)

    model = LoadedModel(Fixed(), tok, "cpu", label="fixed")
    assert model.generate([[1, 2, 3], [4]], max_new_tokens=10) == ["Thank you", "Thank you"]


def test_lora_adapter_is_loaded_through_peft(tiny, tiny_model, adapter_dir):
    tests = _tests()
    plain = [r.output for r in tiny_model.run(tests)]
    with_adapter = load_model(tiny, adapter_path=adapter_dir, device="cpu")
    assert type(with_adapter.model).__name__.startswith("Peft")
    tuned = [r.output for r in with_adapter.run(tests)]
    assert tuned != plain
    with with_adapter.adapter_disabled():
        assert [r.output for r in with_adapter.run(tests)] == plain
    with_adapter.close()


def test_run_acceptance_tuned_and_base(tiny, tiny_model, adapter_dir, tmp_path):
    ticks = []
    tests = _tests()
    result = run_acceptance(
        tests, tuned=ModelRef(name="fine-tuned", model_path=tiny, adapter_path=adapter_dir),
        base=ModelRef(name="base", model_path=tiny), device="cpu",
        progress=lambda done, total: ticks.append((done, total)))
    assert isinstance(result, AcceptanceResult)
    assert ticks == [(i, 8) for i in range(1, 9)]
    assert [r.output for r in result.base] == [r.output for r in tiny_model.run(tests)]
    assert [r.output for r in result.tuned] != [r.output for r in result.base]
    assert result.pass_rate == 1.0 and result.base_pass_rate == 1.0
    report = result.to_report()
    assert [t["base"]["output"] for t in report["tests"]] == [r.output for r in result.base]
    assert len(junit_cases(result)) == 4

    # a full fine-tune is a model folder: tuned and base load separately
    separate = run_acceptance(tests[:1], tuned=ModelRef(name="fine-tuned", model_path=tiny),
                              base=ModelRef(name="base", model_path="builtin:tiny"),
                              device="cpu")
    assert separate.tuned[0].output == separate.base[0].output == result.base[0].output


def test_loading_errors_are_clear(tmp_path, tiny):
    with pytest.raises(LlmspecError, match="does not exist") as info:
        load_model(tmp_path / "missing", device="cpu")
    assert info.value.first.code == "model-not-found"
    (tmp_path / "empty").mkdir()
    with pytest.raises(LlmspecError, match="not a model folder") as info:
        load_model(tmp_path / "empty", device="cpu")
    assert info.value.first.code == "not-a-model"
    with pytest.raises(LlmspecError, match="not a peft adapter folder") as info:
        load_model(tiny, adapter_path=tiny, device="cpu")
    assert "full fine-tune" in info.value.first.hint
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text("{\"model_type\": \"no-such-architecture\"}")
    with pytest.raises(LlmspecError, match="cannot load") as info:
        load_model(broken, device="cpu")
    assert info.value.first.code in ("model-load", "tokenizer-load")


def test_trained_adapter_passes_where_base_fails(tiny, tmp_path):
    """Teach the tiny model three answers with a LoRA adapter, laid out as the chat_template
    dataset type trains (answer and <|im_end|> learned, prompt masked), then check the runner
    renders prompts the same way: the tuned model answers exactly, the base model does not."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from llmspec.runtime.acceptance.gates import evaluate_gates, failed_errors
    from llmspec.spec.models import AcceptanceGates

    tok = AutoTokenizer.from_pretrained(str(tiny))
    pairs = [("Can I get a refund?", "We offer a full refund within thirty days."),
             ("How do I reset my password?", "Click Forgot password on the login page."),
             ("What are your opening hours?", "Monday to Friday, nine to six.")]
    rows = []
    for question, answer in pairs:
        prompt = tok.apply_chat_template([{"role": "system", "content": SYSTEM},
                                          {"role": "user", "content": question}],
                                         tokenize=False, add_generation_prompt=True)
        p = tok(prompt, add_special_tokens=False)["input_ids"]
        a = tok(answer + "<|im_end|>", add_special_tokens=False)["input_ids"]
        rows.append((p + a, [-100] * len(p) + a))
    width = max(len(ids) for ids, _ in rows)
    ids = torch.tensor([i + [0] * (width - len(i)) for i, _ in rows])
    labels = torch.tensor([lab + [-100] * (width - len(lab)) for _, lab in rows])
    mask = torch.tensor([[1] * len(i) + [0] * (width - len(i)) for i, _ in rows])

    torch.manual_seed(0)
    model = peft.get_peft_model(AutoModelForCausalLM.from_pretrained(str(tiny)),
                                peft.LoraConfig(r=16, lora_alpha=32, target_modules="all-linear"))
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=3e-3)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny matrices: threads only add overhead
    try:
        for _ in range(60):
            model(input_ids=ids, attention_mask=mask, labels=labels).loss.backward()
            opt.step()
            opt.zero_grad()
    finally:
        torch.set_num_threads(threads)
    model.save_pretrained(str(tmp_path / "adapter"))

    tests = [SuiteTest(name=f"q{i}", prompt=q, system=SYSTEM, max_new_tokens=32,
                       expectations=(parse_expectation({"equals": a}),
                                     parse_expectation({"perplexity": {"reference": a,
                                                                       "max": 1e9}})))
             for i, (q, a) in enumerate(pairs)]
    result = run_acceptance(tests, tuned=ModelRef("fine-tuned", tiny,
                                                  adapter_path=tmp_path / "adapter"),
                            base=ModelRef("base", tiny), device="cpu")
    assert [r.output for r in result.tuned] == [a for _, a in pairs]  # stopped at <|im_end|>
    assert result.pass_rate == 1.0 and result.base_pass_rate == 0.0
    for tuned, base in zip(result.tuned, result.base):
        assert tuned.outcome.results[1].value < base.outcome.results[1].value
    gates = evaluate_gates(AcceptanceGates.model_validate(
        {"pass_rate": ">= 1.0", "beats_baseline": True}), result, eval_loss=None)
    assert [g.passed for g in gates] == [True, True] and failed_errors(gates) == []
