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
                    max_new_tokens: int, batch_size: int = 8,
                    progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """Answer ``prompts`` with the base model; write ``replay.jsonl`` (one chat example per
    usable answer) and return the stage summary (counts per reason)."""
    from llmspec.runtime.acceptance.runner import load_model

    model = load_model(model_path, device="auto")
    rows: list[dict[str, Any]] = []
    dropped: dict[str, int] = {}
    try:
        order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
        answers: dict[int, tuple[str, bool]] = {}
        for start in range(0, len(order), batch_size):
            batch = order[start:start + batch_size]
            rendered = [model.render(_conversation(system, prompts[i])) for i in batch]
            for i, text in zip(batch, model.generate(rendered, max_new_tokens)):
                used = len(model.tokenizer(text, add_special_tokens=False)["input_ids"])
                answers[i] = (text, used < max_new_tokens)
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
        rows.append({"messages": _conversation(system, prompt) + [{"role": "assistant", "content": answer}],
                     "origin": f"replay:{i + 1}", "trimmed": not complete})
    write_text_atomic(work / REPLAY_FILE, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    summary = {"prompts": len(prompts), "examples": len(rows), "rejected": dict(sorted(dropped.items())),
               "trimmed": sum(r["trimmed"] for r in rows)}
    write_json_atomic(work / "replay.json", summary)
    return summary


def _conversation(system: str | None, prompt: str) -> list[dict[str, str]]:
    turns = [{"role": "system", "content": system}] if system and system.strip() else []
    return turns + [{"role": "user", "content": prompt}]


def read_replay(stage_dir: Path) -> list[dict[str, Any]]:
    with open(stage_dir / REPLAY_FILE, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


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
                     seed: int, source: str = REPLAY_SOURCE) -> dict[str, Any]:
    """Append a seeded draw of ``examples`` (each a ``record`` as Axolotl reads it, or chat
    ``messages``, with its ``origin``) to the train split of a built dataset folder, and account
    for them in ``dataset.json``: the funnel gains the ``source`` whose rows are either drawn or
    ``replay_not_drawn``."""
    meta_path = dataset_dir / "dataset.json"
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    wanted = replay_count(int(meta["train_size"]), fraction)
    drawn = random.Random(seed).sample(range(len(examples)), min(wanted, len(examples)))
    drawn.sort()
    train_path = dataset_dir / meta["train_path"]
    origins_path = dataset_dir / meta["origins_path"]
    train = train_path.read_text(encoding="utf-8")
    origins = origins_path.read_text(encoding="utf-8")
    line = int(meta["train_size"])
    new_train, new_origins = [], []
    for k, i in enumerate(drawn):
        record = examples[i].get("record") or {"messages": examples[i]["messages"]}
        new_train.append(json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n")
        new_origins.append(json.dumps({"split": "train", "line": line + k, "source": source,
                                       "origin": examples[i]["origin"]}, separators=(",", ":")) + "\n")
    write_text_atomic(train_path, train + "".join(new_train))
    write_text_atomic(origins_path, origins + "".join(new_origins))
    not_drawn = len(examples) - len(drawn)
    summary = {"source": source, "available": len(examples), "wanted": wanted, "examples": len(drawn), "fraction": fraction,
               "share": round(len(drawn) / (meta["train_size"] + len(drawn)), 4) if drawn else 0.0}
    meta["train_size"] = int(meta["train_size"]) + len(drawn)
    meta.setdefault("per_source", {})[source] = {
        "rows_in": len(examples), "examples": len(drawn),
        "rejected": {RULE_NOT_DRAWN: not_drawn} if not_drawn else {}}
    meta["replay"] = summary
    hashes = meta.get("hashes")
    if isinstance(hashes, dict):
        for path in (train_path, origins_path):
            if path.name in hashes:
                hashes[path.name] = sha256_file(path)
    write_json_atomic(meta_path, meta)
    return summary
