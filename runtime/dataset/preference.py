"""Preference records (training.method dpo | orpo | kto) laid out as Axolotl 0.19 reads them.

The dataset stage renders every preference row as ``{messages, chosen, rejected}`` (dpo, orpo)
or ``{messages, completion, label}`` (kto): the conversation up to the answer, then the answers.
``axolotl_record`` turns that into the file layout of the dataset type the compiler chose
(``compiler.formatting.PREFERENCE_DATASET_TYPES``).
"""

from __future__ import annotations

from typing import Any

from llmspec.spec.errors import DataError, Diagnostic

from .build import RULE_ERROR, RenderError

# What the chat template is asked to render so the answer's own end-of-turn tokens can be cut
# out of it (Axolotl's dpo chat_template.default does the same).
_DUMMY_USER = {"role": "user", "content": "[[dummy_message]]"}


class ChatText:
    """A conversation's prompt and an answer as text through the model's chat template: what
    Axolotl's kto user-defined type reads (it applies no template itself)."""

    def __init__(self, tokenizer, chat_template: str = "tokenizer_default"):
        from .preview import _axolotl_named_template

        self.tokenizer = tokenizer
        self.template = (_axolotl_named_template(chat_template, tokenizer)
                         if chat_template != "tokenizer_default" else None)

    def prompt(self, messages: list[dict[str, str]]) -> str:
        return self.tokenizer.apply_chat_template(list(messages), chat_template=self.template, tokenize=False,
                                                  add_generation_prompt=True)

    def answer(self, text: str) -> str:
        """The answer with the template's end-of-turn marks, as the template writes it."""
        whole = self.tokenizer.apply_chat_template([_DUMMY_USER, {"role": "assistant", "content": text}],
                                                   chat_template=self.template, tokenize=False,
                                                   add_generation_prompt=False)
        start = whole.find(text)
        return whole[start:].rstrip() if start >= 0 else text


def _alternating(turns: list[dict[str, str]]) -> bool:
    return all(m["role"] == ("user" if i % 2 == 0 else "assistant") for i, m in enumerate(turns))


def axolotl_record(method: str, record: dict[str, Any], chat_text: ChatText | None) -> dict[str, Any]:
    """The line Axolotl reads for one preference ``record`` (see the module doc). Raises
    ``RenderError`` for a conversation the type cannot hold, ``DataError`` for kto without a
    tokenizer."""
    messages = record["messages"]
    if method == "dpo":
        return {"messages": messages, "chosen": record["chosen"], "rejected": record["rejected"]}
    system = messages[0]["content"] if messages and messages[0]["role"] == "system" else ""
    turns = messages[1:] if system else messages
    if method == "orpo":
        if not _alternating(turns):
            raise RenderError(RULE_ERROR, "orpo reads conversations whose user and assistant turns alternate, "
                                          "starting with the user")
        return {"system": system,
                "chosen": turns + [{"role": "assistant", "content": record["chosen"]}],
                "rejected": turns + [{"role": "assistant", "content": record["rejected"]}]}
    if chat_text is None:
        raise DataError(Diagnostic(
            "kto-tokenizer", "training.method kto writes its prompts through the base model's chat template, "
            "and the base model's tokenizer is not on this machine",
            hint="build the dataset where the base model is (llmspec apply fetches nothing at run time)"))
    return {"prompt": chat_text.prompt(messages), "completion": chat_text.answer(record["completion"]),
            "label": bool(record["label"])}


__all__ = ["ChatText", "axolotl_record"]
