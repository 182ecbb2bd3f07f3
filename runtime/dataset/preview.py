"""Examples as the model sees them, with the tokens it learns to produce marked.

The marks come from Axolotl itself: each record goes through the same prompt strategy
``axolotl preprocess`` uses for the dataset type (``chat_template``'s ChatTemplateStrategy,
the alpaca/completion/input_output strategies), and a token is "trained" exactly when
its label is not -100. So what the plan shows is what training optimises, including
Axolotl's choices on end-of-turn tokens and system prompts.

Without axolotl installed the text is still shown, unmarked (``marks_from == "none"``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterable

if TYPE_CHECKING:
    from llmspec.compiler.formatting import FormatPlan

LOG = logging.getLogger(__name__)
IGNORE = -100
OPEN, CLOSE = "[[", "]]"


@dataclass
class RenderedExample:
    input_ids: list[int]
    labels: list[int] | None                 # None when Axolotl was not available
    spans: list[tuple[str, bool]]            # decoded text runs, trained or not
    marks_from: str                          # "axolotl" | "trl" (kto) | "none"
    origin: str | None = None
    dropped: bool = False                    # longer than sequence_len: Axolotl drops it
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def n_tokens(self) -> int:
        return len(self.input_ids)

    @property
    def n_trained(self) -> int:
        return sum(1 for x in (self.labels or []) if x != IGNORE)

    @property
    def trained_mask(self) -> list[bool]:
        return [x != IGNORE for x in self.labels] if self.labels is not None else [False] * len(self.input_ids)

    def plain(self) -> str:
        """The text with trained spans wrapped in [[...]]."""
        return "".join(f"{OPEN}{t}{CLOSE}" if trained else t for t, trained in self.spans)

    def rich(self):
        """A ``rich.text.Text`` with trained spans highlighted."""
        from rich.text import Text

        out = Text()
        for t, trained in self.spans:
            out.append(t, style="bold green" if trained else "dim")
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"origin": self.origin, "text": self.plain(), "tokens": self.n_tokens,
                "trained_tokens": self.n_trained, "marks_from": self.marks_from, "dropped": self.dropped}


def load_tokenizer(tokenizer_path: str):
    """A tokenizer from a local folder or the local HF cache; never the network."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(tokenizer_path), local_files_only=True)


def axolotl_strategy(tokenizer, plan: "FormatPlan", *, sequence_len: int = 2048,
                     chat_template: str = "tokenizer_default"):
    """The prompt strategy Axolotl builds for ``plan``'s dataset type (None without axolotl)."""
    from llmspec.runtime.engine.offline import go_offline
    from llmspec.runtime.train.axolotl_check import axolotl_available

    if not axolotl_available():
        return None
    go_offline()
    from axolotl.utils.dict import DictDefault

    cfg = DictDefault({"sequence_len": sequence_len, "train_on_inputs": False, "chat_template": chat_template})
    ds_cfg = DictDefault({**plan.axolotl_dataset, "chat_template": chat_template})
    if plan.style == "alpaca":
        # Axolotl special-cases `alpaca` in utils/data/wrappers.py rather than loading a module.
        from axolotl.prompt_tokenizers import AlpacaPromptTokenizingStrategy
        from axolotl.prompters import AlpacaPrompter

        return AlpacaPromptTokenizingStrategy(AlpacaPrompter(None), tokenizer, False, sequence_len)
    from axolotl.prompt_strategies import load

    return load(plan.axolotl_dataset["type"], tokenizer, cfg, ds_cfg)


def tokenize_record(strategy, plan: "FormatPlan", record: dict[str, Any]) -> tuple[list[int], list[int]]:
    """Axolotl's (input_ids, labels) for one record."""
    if plan.style == "completion":
        # Batched-only strategy; long texts come back as several sequence_len chunks.
        out = strategy.tokenize_prompt({k: [v] for k, v in record.items()})
        return [i for chunk in out["input_ids"] for i in chunk], [x for chunk in out["labels"] for x in chunk]
    out = strategy.tokenize_prompt(record)
    return list(out["input_ids"]), list(out["labels"])


def _spans(tokenizer, ids: list[int], mask: list[bool]) -> list[tuple[str, bool]]:
    # Decode runs, not single tokens: a character split across byte-level tokens decodes whole.
    spans: list[tuple[str, bool]] = []
    start = 0
    for i in range(1, len(ids) + 1):
        if i == len(ids) or mask[i] != mask[start]:
            spans.append((tokenizer.decode(ids[start:i], skip_special_tokens=False,
                                           clean_up_tokenization_spaces=False), mask[start]))
            start = i
    return spans


def render_examples(
    tokenizer_path: str,
    format_plan: "FormatPlan",
    records: Iterable[dict[str, Any]],
    n: int,
    *,
    origins: Iterable[str | None] | None = None,
    sequence_len: int = 2048,
    chat_template: str = "tokenizer_default",
    tokenizer=None,
) -> list[RenderedExample]:
    """The first ``n`` records rendered as the model sees them, trained tokens marked."""
    tok = tokenizer if tokenizer is not None else load_tokenizer(tokenizer_path)
    preference = format_plan.preference
    if preference:
        # A preference record is shown as its chosen (kto: its only) answer trained, the way one
        # side of the pair reaches the model, with the other side or the label after it.
        format_plan = format_plan.sft_view()
    strategy = axolotl_strategy(tok, format_plan, sequence_len=sequence_len, chat_template=chat_template)
    if strategy is None:
        LOG.debug("axolotl is not installed: examples are shown without trained-token marks")
    origin_list = list(origins) if origins is not None else []
    out: list[RenderedExample] = []
    for i, record in enumerate(records):
        if i >= n:
            break
        origin = origin_list[i] if i < len(origin_list) else None
        note = ""
        if preference:
            record, note = _one_side(preference, record)
        if preference == "kto":
            ids, labels = _kto_ids(tok, record)
            marks_from = "trl"
        elif strategy is not None:
            ids, labels = tokenize_record(strategy, format_plan, record)
            marks_from = "axolotl"
        else:
            ids, labels, marks_from = _unmarked_ids(tok, format_plan, record, chat_template), None, "none"
        mask = [x != IGNORE for x in labels] if labels is not None else [False] * len(ids)
        spans = _spans(tok, ids, mask) + ([(note, False)] if note else [])
        out.append(RenderedExample(
            input_ids=ids, labels=labels, spans=spans, marks_from=marks_from,
            origin=origin, dropped=len(ids) > sequence_len,
        ))
    return out


def _one_side(method: str, record: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """(the record as its chosen answer reaches the model, what is shown after it). Records
    are in the layout Axolotl reads (``preference.axolotl_record``)."""
    if method == "kto":
        return record, f"\n(label: {'desirable' if record.get('label') else 'undesirable'})"
    if method == "orpo":
        system = [{"role": "system", "content": record["system"]}] if record.get("system") else []
        return {"messages": system + list(record["chosen"])}, f"\n(rejected: {record['rejected'][-1]['content']})"
    chosen = list(record["messages"]) + [{"role": "assistant", "content": record["chosen"]}]
    return {"messages": chosen}, f"\n(rejected: {record['rejected']})"


def _kto_ids(tok, record: dict[str, Any]) -> tuple[list[int], list[int]]:
    """(ids, labels) as TRL's KTO trainer builds them: the prompt (already written through the chat
    template) and the completion tokenized apart and joined, the completion trained."""
    prompt = list(tok(record["prompt"], add_special_tokens=False)["input_ids"])
    completion = list(tok(record["completion"], add_special_tokens=False)["input_ids"])
    return prompt + completion, [IGNORE] * len(prompt) + completion


def _unmarked_ids(tok, plan: "FormatPlan", record: dict[str, Any], chat_template: str) -> list[int]:
    from llmspec.compiler.formatting import example_text

    if plan.style == "chat" and chat_template == "tokenizer_default" and tok.chat_template:
        return list(tok.apply_chat_template(record["messages"], tokenize=True, return_dict=False))
    return tok(example_text(record), add_special_tokens=False)["input_ids"]


# ----------------------------------------------------------------------------- prompts


ALPACA_NO_INPUT = ("Below is an instruction that describes a task. Write a response that appropriately "
                   "completes the request.\n\n### Instruction:\n{instruction}\n\n### Response:\n")


def render_conversation(tokenizer, plan: "FormatPlan", messages: list[dict[str, str]], *,
                        chat_template: str = "tokenizer_default") -> str:
    """A conversation laid out exactly as training examples are, ready for generation.

    chat: through the chat template (the model's own, or Axolotl's named one) with the
    generation prompt; alpaca: Axolotl's instruct layout of the last user turn; completion
    and input_output: the user text as is (those styles have no template).
    """
    if plan.style == "chat":
        template = _axolotl_named_template(chat_template, tokenizer) if chat_template != "tokenizer_default" else None
        return tokenizer.apply_chat_template(list(messages), chat_template=template, tokenize=False,
                                             add_generation_prompt=True)
    prompt = next((m["content"] for m in reversed(list(messages)) if m["role"] == "user"), "")
    if plan.style == "alpaca":
        try:
            from axolotl.prompters import AlpacaPrompter

            return next(AlpacaPrompter(None).build_prompt(prompt))
        except ImportError:
            return ALPACA_NO_INPUT.format(instruction=prompt)
    return prompt


def render_prompt(tokenizer, plan: "FormatPlan", prompt: str, *, system: str | None = None,
                  chat_template: str = "tokenizer_default") -> str:
    """One user prompt with the training system prompt (or ``system``), as ``render_conversation``."""
    sys_prompt = system if system is not None else plan.system
    messages = ([{"role": "system", "content": sys_prompt}] if sys_prompt and plan.style == "chat" else []) + [
        {"role": "user", "content": prompt}]
    return render_conversation(tokenizer, plan, messages, chat_template=chat_template)


def _axolotl_named_template(name: str, tokenizer) -> str | None:
    try:
        from axolotl.utils.chat_templates import get_chat_template
    except ImportError:
        return None
    return get_chat_template(name, tokenizer=tokenizer)


__all__ = ["RenderedExample", "axolotl_strategy", "load_tokenizer", "render_conversation", "render_examples",
           "render_prompt", "tokenize_record"]
