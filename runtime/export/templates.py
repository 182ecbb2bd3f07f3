"""Prompt templates on the way out: the chat template an exported model carries, and its
translation into an Ollama (Go text/template) TEMPLATE.

A chat-style run keeps the tokenizer's chat template it trained with. An alpaca-style run gets a
Jinja template that lays a conversation out exactly as Axolotl's alpaca type trained it (Axolotl
saves ChatML beside an alpaca adapter, which is the wrong layout for that model).

Ollama cannot run Jinja. Which layout a template produces is found by rendering a sample
conversation and comparing it with the known layouts; a template that matches none is refused
with a clear error, never guessed.
"""

from __future__ import annotations

from dataclasses import dataclass

from llmspec.spec.errors import Diagnostic, LlmspecError

# Mirrors runtime.acceptance.runner's ALPACA_SYSTEM / ALPACA_TURN (Axolotl's AlpacaPrompter).
ALPACA_CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% if messages[0]['role'] == 'system' %}{{ messages[0]['content'] }}{% set rest = messages[1:] %}"
    "{% else %}{{ 'Below is an instruction that describes a task. Write a response that "
    "appropriately completes the request.' }}{% set rest = messages %}{% endif %}"
    "{% for m in rest %}"
    "{% if m['role'] == 'user' %}{{ '\\n\\n### Instruction:\\n' + m['content'] + '\\n\\n### Response:\\n' }}"
    "{% elif m['role'] == 'assistant' %}{{ m['content'] + eos_token }}{% endif %}"
    "{% endfor %}"
)

SAMPLE = [{"role": "system", "content": "SYS"}, {"role": "user", "content": "U1"},
          {"role": "assistant", "content": "A1"}, {"role": "user", "content": "U2"}]


@dataclass(frozen=True)
class OllamaLayout:
    name: str
    template: str          # Go text/template, as a Modelfile TEMPLATE
    stops: tuple[str, ...]


OLLAMA_LAYOUTS = {
    "chatml": OllamaLayout(
        "chatml",
        "{{- range .Messages }}<|im_start|>{{ .Role }}\n{{ .Content }}<|im_end|>\n{{ end }}<|im_start|>assistant\n",
        ("<|im_start|>", "<|im_end|>")),
    "llama3": OllamaLayout(
        "llama3",
        "<|begin_of_text|>{{- range .Messages }}<|start_header_id|>{{ .Role }}<|end_header_id|>\n\n"
        "{{ .Content }}<|eot_id|>{{ end }}<|start_header_id|>assistant<|end_header_id|>\n\n",
        ("<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>")),
}


def _chatml(messages, bos: str) -> str:
    body = "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in messages)
    return body + "<|im_start|>assistant\n"


def _llama3(messages, bos: str) -> str:
    body = "".join(f"<|start_header_id|>{m['role']}<|end_header_id|>\n\n{m['content']}<|eot_id|>"
                   for m in messages)
    return "<|begin_of_text|>" + body + "<|start_header_id|>assistant<|end_header_id|>\n\n"


_RENDERERS = {"chatml": _chatml, "llama3": _llama3}


def render_jinja(template: str, messages, *, bos_token: str = "", eos_token: str = "") -> str:
    """A chat template rendered as transformers renders it (with a generation prompt)."""
    from transformers.utils.chat_template_utils import render_jinja_template

    rendered, _ = render_jinja_template(conversations=[messages], chat_template=template,
                                        add_generation_prompt=True, bos_token=bos_token, eos_token=eos_token)
    return rendered[0]


def ollama_layout(template: str, *, bos_token: str = "", eos_token: str = "") -> OllamaLayout:
    """The Ollama layout whose output equals ``template``'s on a sample conversation."""
    rendered = render_jinja(template, SAMPLE, bos_token=bos_token, eos_token=eos_token)
    for name, render in _RENDERERS.items():
        if rendered == render(SAMPLE, bos_token):
            return OLLAMA_LAYOUTS[name]
    raise LlmspecError(Diagnostic(
        "ollama-template", "the model's chat template is none of the layouts llmspec can translate for "
        f"Ollama ({', '.join(OLLAMA_LAYOUTS)}); it renders a sample conversation as {rendered[:160]!r}",
        hint="export --format merged and write the Modelfile's TEMPLATE by hand"))
