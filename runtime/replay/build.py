"""Replay examples: made once per base model and prompt set, then mixed into the train split.

``from: base_model`` is self-distillation: the base model answers a prompt set greedily, in
the training chat layout, and those answers become training examples, so what the base model
used to say stays among what the fine-tuned model learns. Generation is the expensive part and
depends only on the base model, the prompts and the system prompt, so it is its own stage,
cached by that fingerprint; the dataset stage then draws as many examples as ``fraction``
asks for. An answer cut off by ``max_new_tokens`` is trimmed to its last whole sentence (or
dropped when it has none), so the model never learns to stop mid-sentence.

Replay examples go into ``train.jsonl`` only, never into the eval split: eval measures the
domain, and retention is measured by its own suite.
"""

from __future__ import annotations

import json
import random
import re
from pathlib import Path
from typing import Any, Callable, Sequence

from llmspec.spec.errors import DataError, Diagnostic, Pos, SpecError

from llmspec.runtime.engine.atomic import write_json_atomic, write_text_atomic
from llmspec.runtime.engine.file_hashes import sha256_file

REPLAY_SOURCE = "replay"
REPLAY_FILE = "replay.jsonl"
RULE_TRUNCATED = "replay_truncated"
RULE_EMPTY = "replay_empty"
RULE_NOT_DRAWN = "replay_not_drawn"
_SENTENCE_END = re.compile(r"[.!?](?=\s|$)")


def load_prompts(prompts: str, base_dir: Path) -> list[str]:
    """The prompts of a ``builtin:`` prompt set or of a JSONL file of ``{"prompt": ...}`` lines."""
    from llmspec.runtime.acceptance.retention import builtin_file

    path = builtin_file(prompts) if prompts.startswith("builtin:") else Path(base_dir) / prompts
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError(Diagnostic("file-not-found", f"training.replay.prompts: {prompts} does not exist",
                                   Pos(prompts), hint="paths are relative to the spec's folder")) from None
    out = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError as exc:
            raise DataError(Diagnostic("bad-json", f"not valid JSON: {exc}", Pos(prompts, lineno))) from None
        prompt = row.get("prompt") if isinstance(row, dict) else None
        if not isinstance(prompt, str) or not prompt.strip():
            raise DataError(Diagnostic("bad-prompt", 'each line needs a non-empty "prompt" string',
                                       Pos(prompts, lineno)))
        out.append(prompt)
    return out


def trim_answer(answer: str, complete: bool) -> str | None:
    """The answer to train on: as generated when it ended by itself; else cut after its last
    whole sentence; None when nothing usable is left."""
    answer = answer.strip()
    if not answer:
        return None
    if complete:
        return answer
    ends = list(_SENTENCE_END.finditer(answer))
    return answer[:ends[-1].end()].strip() if ends else None


def generate_replay(prompts: Sequence[str], *, model_path: Path | str, system: str | None, work: Path,
                    max_new_tokens: int, style: str = "chat", chat_template: str | None = None,
                    batch_size: int = 8, progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """Answer ``prompts`` with the base model, prompted as training will lay out ``style``
    (with the chat template training uses: an Axolotl template name or ``tokenizer_default``);
    write ``replay.jsonl`` (prompt, answer, origin per usable answer) and return the stage
    summary (counts per reason)."""
    from llmspec.runtime.acceptance.runner import load_model, prompt_format_for_style

    model = load_model(model_path, device="auto", prompt_format=prompt_format_for_style(style))
    if chat_template and chat_template != "tokenizer_default" and style == "chat":
        from axolotl.utils.chat_templates import get_chat_template

        model.tokenizer.chat_template = get_chat_template(chat_template, tokenizer=model.tokenizer)
    system = system if style == "chat" else None  # only the chat layout has a system turn
    rows: list[dict[str, Any]] = []
    dropped: dict[str, int] = {}
    try:
        order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
        answers: dict[int, tuple[str, bool]] = {}
        for start in range(0, len(order), batch_size):
            batch = order[start:start + batch_size]
            rendered = [model.render(_conversation(system, prompts[i])) for i in batch]
            for i, ids in zip(batch, model.generate_ids(rendered, max_new_tokens)):
                answers[i] = (model.decode(ids), len(ids) < max_new_tokens)
            if progress:
                progress(min(start + batch_size, len(order)), len(order))
    finally:
        model.close()
    for i, prompt in enumerate(prompts):
        text, complete = answers[i]
        answer = trim_answer(text, complete)
        if answer is None:
            rule = RULE_EMPTY if not text.strip() else RULE_TRUNCATED
            dropped[rule] = dropped.get(rule, 0) + 1
            continue
        rows.append({"prompt": prompt, "answer": answer, "system": system, "origin": f"replay:{i + 1}",
                     "trimmed": not complete})
    write_text_atomic(work / REPLAY_FILE, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    summary = {"prompts": len(prompts), "examples": len(rows), "rejected": dict(sorted(dropped.items())),
               "trimmed": sum(r["trimmed"] for r in rows), "style": style}
    write_json_atomic(work / "replay.json", summary)
    return summary


def replay_record(row: dict[str, Any], style: str) -> dict[str, Any]:
    """A replay answer as a training record of ``style``, laid out as it was prompted."""
    if style == "chat":
        return {"messages": _conversation(row.get("system"), row["prompt"])
                + [{"role": "assistant", "content": row["answer"]}]}
    if style == "alpaca":
        return {"instruction": row["prompt"], "input": "", "output": row["answer"]}
    if style == "input_output":
        return {"segments": [{"label": False, "text": row["prompt"]}, {"label": True, "text": row["answer"]}]}
    return {"text": row["prompt"] + row["answer"]}  # completion: the answer continued the prompt's text


def _conversation(system: str | None, prompt: str) -> list[dict[str, str]]:
    turns = [{"role": "system", "content": system}] if system and system.strip() else []
    return turns + [{"role": "user", "content": prompt}]


def read_replay(stage_dir: Path, style: str) -> list[dict[str, Any]]:
    """The replay stage's answers as examples of ``style`` (``record`` and ``origin``)."""
    with open(stage_dir / REPLAY_FILE, encoding="utf-8") as fh:
        rows = [json.loads(line) for line in fh if line.strip()]
    return [{"record": replay_record(r, style), "origin": r["origin"]} for r in rows]


def replay_count(train_size: int, fraction: float) -> int:
    """How many replay examples make ``fraction`` of a train split holding ``train_size``
    domain examples."""
    return round(train_size * fraction / (1.0 - fraction)) if fraction < 1.0 else train_size


def source_examples(name: str, frame, fmt_plan, work: Path) -> list[dict[str, Any]]:
    """A declared source's cleaned rows as examples (``record`` and ``origin``), formatted as
    every other source is, for ``from: <source>`` replay."""
    import shutil

    from llmspec.spec.models import SplitSpec

    from llmspec.runtime.dataset.build import build_dataset

    tmp = work / ".replay-source"
    try:
        result = build_dataset({name: frame}, fmt_plan, SplitSpec(eval_fraction=0.0), tmp)
        records = [json.loads(line) for line in result.train_path.read_text(encoding="utf-8").splitlines() if line]
        origins = [json.loads(line) for line in result.origins_path.read_text(encoding="utf-8").splitlines() if line]
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return [{"record": r, "origin": o.get("origin", f"{name}#{i}")} for i, (r, o) in enumerate(zip(records, origins))]


def mix_into_dataset(dataset_dir: Path, examples: Sequence[dict[str, Any]], *, fraction: float,
                     seed: int, source: str = REPLAY_SOURCE,
                     fit: Callable[[dict[str, Any]], Any] | None = None) -> dict[str, Any]:
    """Append a seeded draw of ``examples`` (each a ``record`` as Axolotl reads it, with its
    ``origin``) to the train split of a built dataset folder, and account for them in
    ``dataset.json``: the funnel gains the ``source`` whose rows are drawn, rejected by ``fit``
    (the dataset's token-exact length check: ``too_long``, ``no_trained_tokens``) or
    ``replay_not_drawn``. Drawing goes on past rejected examples until ``fraction`` is met or
    the examples run out."""
    from llmspec.runtime.dataset.build import RenderError, rejected_by_rule

    meta_path = dataset_dir / "dataset.json"
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    domain_size = int(meta["train_size"])
    wanted = replay_count(domain_size, fraction)
    order = list(range(len(examples)))
    random.Random(seed).shuffle(order)
    taken: list[tuple[int, dict[str, Any], int | None, bool]] = []  # (index, record, tokens, truncated)
    rejected: dict[str, int] = {}
    tried = 0
    for i in order:
        if len(taken) >= wanted:
            break
        tried += 1
        record = examples[i]["record"]
        tokens, truncated = None, False
        if fit is not None:
            try:
                fitted = fit(record)
            except RenderError as exc:
                rejected[exc.rule] = rejected.get(exc.rule, 0) + 1
                continue
            record, tokens, truncated = fitted.record, fitted.tokens, fitted.truncated
        taken.append((i, record, tokens, truncated))
    taken.sort(key=lambda t: t[0])  # file order follows the examples' order, whatever the draw
    train_path = dataset_dir / meta["train_path"]
    origins_path = dataset_dir / meta["origins_path"]
    new_train, new_origins = [], []
    for k, (i, record, tokens, _) in enumerate(taken):
        new_train.append(json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n")
        origin = {"split": "train", "line": domain_size + k, "source": source, "origin": examples[i]["origin"]}
        new_origins.append(json.dumps(origin | ({"tokens": tokens} if tokens is not None else {}),
                                      separators=(",", ":")) + "\n")
    write_text_atomic(train_path, train_path.read_text(encoding="utf-8") + "".join(new_train))
    write_text_atomic(origins_path, origins_path.read_text(encoding="utf-8") + "".join(new_origins))
    not_drawn = len(examples) - tried
    if not_drawn:
        rejected[RULE_NOT_DRAWN] = not_drawn
    truncated = sum(t[3] for t in taken)
    summary = {"source": source, "available": len(examples), "wanted": wanted, "examples": len(taken),
               "fraction": fraction, "rejected": dict(sorted(rejected.items())),
               "share": round(len(taken) / (domain_size + len(taken)), 4) if taken else 0.0}
    meta["train_size"] = domain_size + len(taken)
    meta.setdefault("per_source", {})[source] = {"rows_in": len(examples), "examples": len(taken),
                                                 "rejected": dict(sorted(rejected.items()))} | (
        {"truncated": truncated} if truncated else {})
    meta["rejected"] = rejected_by_rule(counts.get("rejected", {}) for counts in meta["per_source"].values())
    tokens = meta.get("tokens")
    if isinstance(tokens, dict):
        added = [t[2] for t in taken if t[2] is not None]
        tokens["train"] = int(tokens.get("train", 0)) + sum(added)
        tokens["max_per_example"] = max([int(tokens.get("max_per_example", 0)), *added])
        tokens["truncated"] = int(tokens.get("truncated", 0)) + truncated
    meta["replay"] = summary
    hashes = meta.get("hashes")
    if isinstance(hashes, dict):
        for path in (train_path, origins_path):
            if path.name in hashes:
                hashes[path.name] = sha256_file(path)
    write_json_atomic(meta_path, meta)
    return summary

