"""`llmspec chat` and `llmspec export` on an applied builtin:tiny project: the exports load
without llmspec (plain transformers, peft from a copied folder, Ollama's Go template), answer as
the adapter did, and a failed parity check leaves nothing behind."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap

import pytest

from deploy_project import OFFLINE, applied_project, llmspec

pytestmark = pytest.mark.slow

SYSTEM = "You are Acme's support assistant."
QUESTIONS = ["How do I reset my router?", "Where is my invoice?"]


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    return applied_project(tmp_path_factory.mktemp("export"))


@pytest.fixture(scope="module")
def trained(project):
    """Greedy answers of the adapter as trained and of the base model, computed here."""
    from llmspec.api import load_spec
    from llmspec.runtime.serve.target import resolve_run

    run = resolve_run(load_spec(project / "llmspec.yaml"))
    model = run.load(device="cpu")
    convs = [[{"role": "system", "content": SYSTEM}, {"role": "user", "content": q}] for q in QUESTIONS]
    tuned = [model.generate([model.render(c)], 16)[0] for c in convs]
    with model.adapter_disabled():
        base = [model.generate([model.render(c)], 16)[0] for c in convs]
    second_turn = convs[0] + [{"role": "assistant", "content": tuned[0]}, {"role": "user", "content": QUESTIONS[1]}]
    follow_up = model.generate([model.render(second_turn)], 16)[0]
    return {"run": run, "tuned": tuned, "base": base, "follow_up": follow_up}


def fresh_python(code: str, cwd) -> str:
    """Run ``code`` in a new interpreter that cannot import llmspec."""
    proc = subprocess.run([sys.executable, "-I", "-c", textwrap.dedent(code)], cwd=cwd, capture_output=True,
                          text=True, timeout=300, env={**OFFLINE, "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


# Importing llmspec fails in these processes: what loads the export must not need it.
NO_LLMSPEC = """
import json, sys
sys.modules["llmspec"] = None
"""


def test_chat_prompt_prints_the_tuned_answer_and_compare_prints_both(project, trained):
    out = llmspec(["chat", "llmspec.yaml", "--prompt", QUESTIONS[0], "--max-tokens", "16"], project)
    assert out.stdout == trained["tuned"][0] + "\n"
    both = json.loads(llmspec(["chat", "llmspec.yaml", "--prompt", QUESTIONS[0], "--max-tokens", "16",
                               "--compare", "--json"], project).stdout)
    assert both["answer"] == trained["tuned"][0] and both["base_answer"] == trained["base"][0]
    assert both["run"] == trained["run"].run


def test_interactive_chat_streams_a_multi_turn_conversation(project, trained):
    proc = llmspec(["chat", "llmspec.yaml", "--max-tokens", "16"], project,
                   input=f"{QUESTIONS[0]}\n{QUESTIONS[1]}\n/reset\n{QUESTIONS[1]}\n/exit\n")
    tuned = trained["tuned"]
    assert proc.stdout == f"tuned: {tuned[0]}\ntuned: {trained['follow_up']}\ntuned: {tuned[1]}\n"


def test_merged_export_loads_with_plain_transformers_and_answers_as_the_adapter(project, trained, tmp_path):
    out = tmp_path / "merged"
    proc = llmspec(["export", "llmspec.yaml", "--format", "merged", "--out", str(out)], project)
    assert "parity PASS" in proc.stdout
    assert json.loads((out / "parity.json").read_text())["passed"] is True
    assert "## Export parity" in (out / "README.md").read_text()
    answers = fresh_python(NO_LLMSPEC + f"""
from transformers import AutoModelForCausalLM, AutoTokenizer
tok = AutoTokenizer.from_pretrained("{out}")
model = AutoModelForCausalLM.from_pretrained("{out}", dtype="float32")
out = []
for q in {QUESTIONS!r}:
    text = tok.apply_chat_template([{{"role": "system", "content": {SYSTEM!r}}}, {{"role": "user", "content": q}}],
                                   tokenize=False, add_generation_prompt=True)
    ids = tok(text, add_special_tokens=False, return_tensors="pt")
    gen = model.generate(**ids, max_new_tokens=16, do_sample=False)
    out.append(tok.decode(gen[0, ids["input_ids"].shape[1]:], skip_special_tokens=True))
print(json.dumps(out))
""", tmp_path)
    assert json.loads(answers) == trained["tuned"]


def test_gguf_export_loads_with_transformers_alone_and_answers_as_the_adapter(project, trained, tmp_path):
    out = tmp_path / "gguf"
    proc = llmspec(["export", "llmspec.yaml", "--format", "gguf", "--out", str(out)], project)
    assert "parity PASS" in proc.stdout and "ollama create deploy-bot" in proc.stdout
    assert sorted(p.name for p in out.iterdir()) == ["Modelfile", "README.md", "model.gguf", "parity.json"]
    modelfile = (out / "Modelfile").read_text()
    assert "FROM ./model.gguf" in modelfile and f'SYSTEM """{SYSTEM}"""' in modelfile
    # The file alone: weights, vocabulary and the chat template the run trained with.
    answers = fresh_python(NO_LLMSPEC + f"""
from transformers import AutoModelForCausalLM, AutoTokenizer
tok = AutoTokenizer.from_pretrained("{out}", gguf_file="model.gguf")
model = AutoModelForCausalLM.from_pretrained("{out}", gguf_file="model.gguf", dtype="float32")
out = []
for q in {QUESTIONS!r}:
    text = tok.apply_chat_template([{{"role": "system", "content": {SYSTEM!r}}}, {{"role": "user", "content": q}}],
                                   tokenize=False, add_generation_prompt=True)
    ids = tok(text, add_special_tokens=False, return_tensors="pt")
    gen = model.generate(**ids, max_new_tokens=16, do_sample=False)  # stops where the file says
    out.append(tok.decode(gen[0, ids["input_ids"].shape[1]:], skip_special_tokens=True))
print(json.dumps(out))
""", tmp_path)
    assert json.loads(answers) == trained["tuned"]


def test_q8_0_is_for_gguf_only(project, tmp_path):
    proc = llmspec(["export", "llmspec.yaml", "--format", "merged", "--dtype", "q8_0", "--out", str(tmp_path / "m")],
                   project, check=False)
    assert proc.returncode != 0 and "error[export-dtype]" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "m").exists()


def test_adapter_export_loads_with_peft_from_a_copied_folder(project, trained, tmp_path):
    out = tmp_path / "adapter"
    llmspec(["export", "llmspec.yaml", "--format", "adapter", "--out", str(out)], project)
    moved = tmp_path / "elsewhere" / "adapter"
    shutil.copytree(out, moved)
    shutil.rmtree(out)
    config = json.loads((moved / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == "builtin:tiny"
    for path in moved.iterdir():
        if path.suffix in (".json", ".jinja", ".md"):
            text = path.read_text()
            assert str(project) not in text and ".cache/llmspec" not in text, path.name
    base = trained["run"].base_model_path
    answers = fresh_python(NO_LLMSPEC + f"""
from peft import PeftModel
from transformers import AutoModelForCausalLM, AutoTokenizer
tok = AutoTokenizer.from_pretrained("{moved}")
model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained("{base}", dtype="float32"), "{moved}")
text = tok.apply_chat_template([{{"role": "system", "content": {SYSTEM!r}}}, {{"role": "user", "content": {QUESTIONS[0]!r}}}],
                               tokenize=False, add_generation_prompt=True)
ids = tok(text, add_special_tokens=False, return_tensors="pt")
gen = model.generate(**ids, max_new_tokens=16, do_sample=False, eos_token_id=[tok.convert_tokens_to_ids("<|im_end|>"), tok.eos_token_id])
print(json.dumps(tok.decode(gen[0, ids["input_ids"].shape[1]:], skip_special_tokens=True)))
""", tmp_path)
    assert json.loads(answers) == trained["tuned"][0]


GO_RENDER = """
package main

import (
	"encoding/json"
	"os"
	"text/template"
)

type Message struct{ Role, Content string }

func main() {
	var data struct{ Messages []Message; System string }
	json.Unmarshal([]byte(os.Args[2]), &data)
	t := template.Must(template.New("m").Parse(os.Args[1]))
	t.Execute(os.Stdout, data)
}
"""


def test_ollama_modelfile_template_renders_the_training_prompt(project, tmp_path):
    go = shutil.which("go")
    if go is None:
        pytest.skip("Go is not installed (.ci/run installs golang-go): Ollama's templates are Go templates")
    out = tmp_path / "ollama"
    llmspec(["export", "llmspec.yaml", "--format", "ollama", "--out", str(out)], project)
    modelfile = (out / "Modelfile").read_text()
    assert "FROM ./merged" in modelfile and f'SYSTEM """{SYSTEM}"""' in modelfile
    assert 'PARAMETER stop "<|im_end|>"' in modelfile
    template = modelfile.split('TEMPLATE """', 1)[1].split('"""', 1)[0]
    conversation = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "Hi"},
                    {"role": "assistant", "content": "Hello!"}, {"role": "user", "content": QUESTIONS[0]}]
    (tmp_path / "render.go").write_text(GO_RENDER)
    data = {"System": SYSTEM, "Messages": [{"Role": m["role"], "Content": m["content"]} for m in conversation]}
    rendered = subprocess.run([go, "run", "render.go", template, json.dumps(data)], cwd=tmp_path, capture_output=True,
                              text=True, timeout=300, env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path),
                                                           "GOCACHE": str(tmp_path / "gocache"), "GO111MODULE": "off"})
    assert rendered.returncode == 0, rendered.stderr
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(out / "merged"))
    assert rendered.stdout == tok.apply_chat_template(conversation, tokenize=False, add_generation_prompt=True)


def test_failed_parity_exits_3_and_writes_nothing(project, tmp_path, monkeypatch):
    from llmspec.api import load_spec
    from llmspec.runtime.export import export as export_module
    from llmspec.runtime.serve.target import resolve_run

    real = export_module.answers
    calls = []

    def drifting(tests, **kwargs):  # the export's answers (second call) come out different
        calls.append(kwargs)
        got = real(tests, **kwargs)
        return got if len(calls) == 1 else [a + " (drifted)" for a in got]

    monkeypatch.setattr(export_module, "answers", drifting)
    loaded = load_spec(project / "llmspec.yaml")
    out = tmp_path / "merged"
    with pytest.raises(export_module.ExportParityFailed) as err:
        export_module.export_model(loaded, resolve_run(loaded), "merged", out)
    assert err.value.exit_code == 3 and "parity FAIL" in err.value.diagnostics[0].message
    assert not out.exists() and list(tmp_path.iterdir()) == []
