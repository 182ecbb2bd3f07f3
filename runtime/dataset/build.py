"""Step 3, done: render cleaned rows into examples, split them, write Axolotl's files.

Split policy (deterministic, stable under growth): every example gets a rank key
``sha256(seed, normalised content)``; within each stratum (the ``stratify`` column's
value, or one stratum) the ``round(n * eval_fraction)`` examples with the smallest keys
go to eval. The key depends on the example's content only, not on its row number, so
adding or removing rows moves at most about as many examples across the boundary as
were added, never reshuffles the rest; a new seed draws a new split. Examples equal
after normalisation share a key, so they land side by side; any that still straddle
the boundary are removed from eval and counted as leakage.

Files: ``train.jsonl`` (and ``eval.jsonl`` when ``eval_fraction > 0``) hold the records
Axolotl reads and nothing else; ``origins.jsonl`` maps each written line back to its
source row for reports. Every file is written to a temporary name and renamed.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

from llmspec.compiler.formatting import CHAT_ROLES, FieldPlan, FormatPlan, Renderer, SourcePlan, example_text
from llmspec.runtime.engine.atomic import write_lines_atomic
from llmspec.spec.errors import DataError, Diagnostic

if TYPE_CHECKING:
    import polars as pl

    from llmspec.spec.models import SplitSpec

ORIGIN = "_origin"
TRAIN_FILE = "train.jsonl"
EVAL_FILE = "eval.jsonl"
ORIGINS_FILE = "origins.jsonl"

RULE_ERROR = "format_error"
RULE_EMPTY = "format_empty"
RULE_BUDGET = "format_budget"
RULE_SAME_ANSWERS = "same_answers"


class RenderError(Exception):
    """One row could not become an example; ``rule`` is the counted reason."""

    def __init__(self, rule: str, message: str):
        super().__init__(message)
        self.rule = rule
        self.message = message


@dataclass
class SourceCounts:
    rows_in: int = 0
    examples: int = 0
    rejected: dict[str, int] = field(default_factory=dict)
    truncated: int = 0  # format.too_long: truncate

    def to_dict(self) -> dict[str, Any]:
        out = {"rows_in": self.rows_in, "examples": self.examples, "rejected": dict(sorted(self.rejected.items()))}
        return out | ({"truncated": self.truncated} if self.truncated else {})


@dataclass
class Example:
    source: str
    origin: str
    record: dict[str, Any]
    key: str                  # normalised content, the leakage identity
    stratum: Any = None
    tokens: int | None = None  # as Axolotl tokenizes it (None: not measured)


@dataclass
class DatasetResult:
    train_path: Path
    eval_path: Path | None
    origins_path: Path
    per_source: dict[str, SourceCounts]
    train_size: int
    eval_size: int
    leakage_removed: int
    leakage: list[dict[str, str]]          # {source, origin, train_source, train_origin}
    rejects: "pl.DataFrame"                # source, _origin, rule, message
    hashes: dict[str, str]                 # file name -> sha256 hex
    stratify: str | None = None
    # tokens per written example, as Axolotl tokenizes it ({} when no tokenizer was given)
    token_counts: dict[str, list[int]] = field(default_factory=dict)
    sequence_len: int | None = None

    @property
    def examples(self) -> int:
        return self.train_size + self.eval_size

    @property
    def paths(self) -> dict[str, str]:
        out = {"train": str(self.train_path)}
        if self.eval_path is not None:
            out["eval"] = str(self.eval_path)
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "train_path": str(self.train_path),
            "eval_path": str(self.eval_path) if self.eval_path else None,
            "origins_path": str(self.origins_path),
            "per_source": {k: v.to_dict() for k, v in self.per_source.items()},
            "train_size": self.train_size,
            "eval_size": self.eval_size,
            "leakage_removed": self.leakage_removed,
            "rejected": self.rejected_by_rule(),
            "hashes": dict(self.hashes),
            "stratify": self.stratify,
            "tokens": self.token_summary(),
        }

    @classmethod
    def load(cls, folder: Path) -> "DatasetResult":
        """A built dataset read back from its folder (``dataset.json``; paths relative to it)."""
        import polars as pl

        folder = Path(folder)
        d = json.loads((folder / "dataset.json").read_text(encoding="utf-8"))
        rejects = folder / "rejects.parquet"
        return cls(train_path=folder / Path(d["train_path"]).name,
                   eval_path=folder / Path(d["eval_path"]).name if d.get("eval_path") else None,
                   origins_path=folder / Path(d["origins_path"]).name,
                   per_source={k: SourceCounts(**v) for k, v in d["per_source"].items()},
                   train_size=d["train_size"], eval_size=d["eval_size"], leakage_removed=d["leakage_removed"],
                   leakage=[], rejects=pl.read_parquet(rejects) if rejects.exists() else pl.DataFrame(),
                   hashes=d.get("hashes", {}), stratify=d.get("stratify"),
                   token_counts=_token_counts(folder / Path(d["origins_path"]).name) if d.get("tokens") else {},
                   sequence_len=(d.get("tokens") or {}).get("sequence_len"))
    def token_summary(self) -> dict[str, Any] | None:
        """Token totals as Axolotl will see them; None when lengths were not measured."""
        if not self.token_counts:
            return None
        every = self.token_counts.get("train", []) + self.token_counts.get("eval", [])
        return {"train": sum(self.token_counts.get("train", [])), "eval": sum(self.token_counts.get("eval", [])),
                "max_per_example": max(every, default=0), "sequence_len": self.sequence_len,
                "truncated": sum(c.truncated for c in self.per_source.values()), "method": "axolotl"}

    def rejected_by_rule(self) -> dict[str, int]:
        return rejected_by_rule(counts.rejected for counts in self.per_source.values())


def rejected_by_rule(per_source: Iterable[dict[str, int]]) -> dict[str, int]:
    """Each source's rejected counts, summed by rule (the funnel's total)."""
    total: dict[str, int] = {}
    for counts in per_source:
        for rule, n in counts.items():
            total[rule] = total.get(rule, 0) + n
    return dict(sorted(total.items()))


def _token_counts(origins: Path) -> dict[str, list[int]]:
    """Per split, each example's measured tokens, as the dataset stage wrote them beside its origin."""
    out: dict[str, list[int]] = {"train": [], "eval": []}
    with open(origins, encoding="utf-8") as fh:
        for line in fh:
            o = json.loads(line)
            if isinstance(o.get("tokens"), int):
                out.setdefault(o["split"], []).append(o["tokens"])
    return out


# ----------------------------------------------------------------------------- normalisation

_WS = re.compile(r"\s+")


def normalise(text: str) -> str:
    """NFKC, lowercase, whitespace collapsed: the form two texts must share to count as one."""
    return _WS.sub(" ", unicodedata.normalize("NFKC", text).lower()).strip()


# ----------------------------------------------------------------------------- rendering


def _describe(fp: FieldPlan) -> str:
    kind = "column" if fp.kind in ("column", "messages") else "template"
    return f"field '{fp.name}' ({kind} {fp.text!r})"


def _render_text(renderer: Renderer, source: str, fp: FieldPlan, row: dict[str, Any]) -> str:
    from llmspec.spec.sandbox import TemplateBudgetError

    try:
        value = renderer.render(source, fp, row)
    except TemplateBudgetError as exc:
        raise RenderError(RULE_BUDGET, f"{_describe(fp)}: over budget: {exc}") from None
    except Exception as exc:  # a template can raise anything: undefined names, bad filters, sandbox
        raise RenderError(RULE_ERROR, f"{_describe(fp)}: {type(exc).__name__}: {exc}") from None
    if fp.required and not str(value).strip():
        raise RenderError(RULE_EMPTY, f"{_describe(fp)} rendered empty")
    return value


def _messages(renderer: Renderer, source: str, fp: FieldPlan, row: dict[str, Any], *,
              prompt_only: bool = False) -> list[dict[str, str]]:
    turns = row.get(fp.text)
    if turns is None:
        raise RenderError(RULE_EMPTY, f"{_describe(fp)} is null")
    if not isinstance(turns, (list, tuple)):
        raise RenderError(RULE_ERROR, f"{_describe(fp)} is a {type(turns).__name__}, not a list of turns")
    out = []
    for i, turn in enumerate(turns):
        if not isinstance(turn, dict) or "role" not in turn or "content" not in turn:
            raise RenderError(RULE_ERROR, f"{_describe(fp)}: turn {i} is not a {{role, content}} mapping")
        role, content = turn["role"], turn["content"]
        if role not in CHAT_ROLES:
            raise RenderError(RULE_ERROR, f"{_describe(fp)}: turn {i} has role {role!r}; "
                                          f"expected one of {', '.join(CHAT_ROLES)}")
        if content is None or not str(content).strip():
            raise RenderError(RULE_EMPTY, f"{_describe(fp)}: turn {i} ({role}) is empty")
        out.append({"role": role, "content": str(content)})
    if prompt_only:
        # A preference record's answers come from their own fields: the conversation ends with the user.
        if not out or out[-1]["role"] != "user":
            raise RenderError(RULE_ERROR, f"{_describe(fp)} must end with a user turn: the answers compared are "
                                          "the chosen/rejected (or assistant) fields")
        return out
    if not any(m["role"] == "assistant" for m in out):
        raise RenderError(RULE_EMPTY, f"{_describe(fp)} has no assistant turn: nothing to learn")
    return out


LABEL_TRUE = {"true", "1", "yes", "up", "good", "desirable"}
LABEL_FALSE = {"false", "0", "no", "down", "bad", "undesirable"}


def _label(renderer: Renderer, source: str, fp: FieldPlan, row: dict[str, Any]) -> bool:
    value = row.get(fp.text) if fp.kind == "column" else _render_text(renderer, source, fp, row)
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower() if value is not None else ""
    if text in LABEL_TRUE:
        return True
    if text in LABEL_FALSE:
        return False
    raise RenderError(RULE_ERROR, f"{_describe(fp)} is {value!r}: a kto label is true/false (or up/down, 1/0)")


def _preference_record(plan: FormatPlan, renderer: Renderer, sp: SourcePlan, row: dict[str, Any],
                       system: str | None) -> dict[str, Any]:
    """A dpo/orpo record ({messages, chosen, rejected}) or a kto one ({messages, completion, label}):
    the conversation up to the answer, then the answers. ``axolotl_record`` lays it out for Axolotl."""
    src = sp.source
    messages_fp = sp.get("messages")
    if messages_fp is not None:
        messages = _messages(renderer, src, messages_fp, row, prompt_only=True)
    else:
        messages = [{"role": "user", "content": _render_text(renderer, src, sp.get("user"), row)}]
    if system and system.strip() and messages[0]["role"] != "system":
        messages = [{"role": "system", "content": system}] + messages
    if plan.preference == "kto":
        return {"messages": messages, "completion": _render_text(renderer, src, sp.get("assistant"), row),
                "label": _label(renderer, src, sp.get("label"), row)}
    chosen = _render_text(renderer, src, sp.get("chosen"), row)
    rejected = _render_text(renderer, src, sp.get("rejected"), row)
    if normalise(chosen) == normalise(rejected):
        raise RenderError(RULE_SAME_ANSWERS, "the chosen and rejected answers are the same: nothing to prefer")
    return {"messages": messages, "chosen": chosen, "rejected": rejected}


def render_record(plan: FormatPlan, renderer: Renderer, sp: SourcePlan, row: dict[str, Any]) -> dict[str, Any]:
    """The record for one row, laid out as Axolotl's dataset type expects. Raises RenderError."""
    src = sp.source
    if plan.style == "chat":
        system_fp = sp.get("system")
        system = _render_text(renderer, src, system_fp, row) if system_fp else plan.system
        if plan.preference:
            return _preference_record(plan, renderer, sp, row, system)
        messages_fp = sp.get("messages")
        if messages_fp is not None:
            messages = _messages(renderer, src, messages_fp, row)
        else:
            messages = [
                {"role": "user", "content": _render_text(renderer, src, sp.get("user"), row)},
                {"role": "assistant", "content": _render_text(renderer, src, sp.get("assistant"), row)},
            ]
        # A thread that carries its own system turn keeps it; the spec's prompt is the default.
        if system and system.strip() and messages[0]["role"] != "system":
            messages = [{"role": "system", "content": system}] + messages
        return {"messages": messages}
    if plan.style == "alpaca":
        input_fp = sp.get("input")
        return {
            "instruction": _render_text(renderer, src, sp.get("instruction"), row),
            "input": _render_text(renderer, src, input_fp, row) if input_fp else "",
            "output": _render_text(renderer, src, sp.get("output"), row),
        }
    if plan.style == "completion":
        return {"text": _render_text(renderer, src, sp.get("text"), row)}
    # input_output: segments may render empty one by one (optional context); the example
    # needs some text and some trained text, else there is nothing to learn.
    segments = []
    for fp in sp.segments:
        text = _render_text(renderer, src, FieldPlan(fp.name, fp.kind, fp.text, False, fp.train, fp.columns), row)
        if text:
            segments.append({"label": bool(fp.train), "text": text})
    if not any(s["label"] and s["text"].strip() for s in segments):
        raise RenderError(RULE_EMPTY, "every trained segment rendered empty")
    return {"segments": segments}


# ----------------------------------------------------------------------------- splitting


def _rank(seed: int, key: str, record: dict[str, Any]) -> tuple[str, str]:
    primary = hashlib.sha256(f"{seed}\0{key}".encode()).hexdigest()
    # Ties (same normalised text) are broken by the exact record so the order is total.
    tiebreak = hashlib.sha256(json.dumps(record, sort_keys=True, ensure_ascii=False).encode()).hexdigest()
    return primary, tiebreak


def split_examples(examples: list[Example], eval_fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """Indices of train and eval examples (each list in input order)."""
    if eval_fraction <= 0:
        return list(range(len(examples))), []
    strata: dict[str, list[int]] = {}
    for i, ex in enumerate(examples):
        strata.setdefault(json.dumps(ex.stratum, sort_keys=True, default=str), []).append(i)
    eval_idx: set[int] = set()
    for members in strata.values():
        n_eval = int(len(members) * eval_fraction + 0.5)  # round half up, not to even
        ranked = sorted(members, key=lambda i: _rank(seed, examples[i].key, examples[i].record))
        eval_idx.update(ranked[:n_eval])
    train = [i for i in range(len(examples)) if i not in eval_idx]
    return train, sorted(eval_idx)


# ----------------------------------------------------------------------------- writing


def _dumps(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


# ----------------------------------------------------------------------------- entry point


def build_dataset(
    frames: dict[str, "pl.DataFrame"],
    plan: FormatPlan,
    split: "SplitSpec",
    out_dir: Path,
    *,
    special_tokens: dict[str, str] | None = None,
    lengths: Any = None,
    chat_text: Any = None,
) -> DatasetResult:
    """Render every row of every mapped source, split, and write the dataset files.

    ``frames``: cleaned rows per source (data columns plus ``_origin``). Sources without a
    ``format.map`` entry are ignored. ``special_tokens`` ({bos_token, eos_token}) are
    available to templates. ``lengths`` (a ``lengths.LengthCheck``) measures every example
    as Axolotl tokenizes it and rejects or truncates over-length ones (``format.too_long``);
    without it lengths are not checked here. ``chat_text`` (``preference.ChatText``) writes kto
    prompts through the chat template. Raises ``DataError`` when no example survives or the
    ``stratify`` column exists in no source.
    """
    from .preference import axolotl_record
    import polars as pl

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    renderer = Renderer(plan, special_tokens)

    if split.stratify is not None and not any(split.stratify in f.columns for n, f in frames.items()
                                              if n in plan.sources):
        raise DataError(Diagnostic(
            code="split-stratify", message=f"split.stratify names column '{split.stratify}', "
            "which no formatted source has",
            hint="stratify by a column the cleaned rows carry"))

    counts: dict[str, SourceCounts] = {}
    examples: list[Example] = []
    rejects: list[dict[str, str]] = []
    for source, sp in plan.sources.items():
        frame = frames.get(source)
        c = counts[source] = SourceCounts()
        if frame is None:
            continue
        c.rows_in = frame.height
        for i, row in enumerate(frame.iter_rows(named=True)):
            origin = str(row.get(ORIGIN) if row.get(ORIGIN) is not None else f"{source}#{i}")
            tokens, truncated = None, False
            try:
                record = render_record(plan, renderer, sp, row)
                if lengths is not None:
                    fitted = lengths.fit(record)
                    record, tokens, truncated = fitted.record, fitted.tokens, fitted.truncated
                key = normalise(example_text(record))
                if plan.preference:
                    record = axolotl_record(plan.preference, record, chat_text)
            except RenderError as exc:
                c.rejected[exc.rule] = c.rejected.get(exc.rule, 0) + 1
                rejects.append({"source": source, ORIGIN: origin, "rule": exc.rule,
                                "message": f"source '{source}', row {origin}: {exc.message}"})
                continue
            c.examples += 1
            c.truncated += truncated
            examples.append(Example(source, origin, record, key,
                                    row.get(split.stratify) if split.stratify else None, tokens))

    rejects_frame = pl.DataFrame(rejects, schema={"source": pl.Utf8, ORIGIN: pl.Utf8, "rule": pl.Utf8,
                                                  "message": pl.Utf8})
    if not examples:
        first = f" First problem: {rejects[0]['message']}" if rejects else ""
        raise DataError(Diagnostic(
            code="dataset-empty", message=f"no row became a training example.{first}",
            hint="check format.map against the cleaned columns (llmspec compile shows rejects)"))

    train_idx, eval_idx = split_examples(examples, split.eval_fraction, split.seed)
    train_by_key = {examples[i].key: examples[i] for i in train_idx}
    leakage: list[dict[str, str]] = []
    kept_eval: list[int] = []
    for i in eval_idx:
        twin = train_by_key.get(examples[i].key)
        if twin is None:
            kept_eval.append(i)
        else:
            leakage.append({"source": examples[i].source, "origin": examples[i].origin,
                            "train_source": twin.source, "train_origin": twin.origin})

    hashes: dict[str, str] = {}
    train_path = out_dir / TRAIN_FILE
    hashes[TRAIN_FILE] = write_lines_atomic(train_path, (_dumps(examples[i].record) for i in train_idx))
    eval_path: Path | None = None
    stale_eval = out_dir / EVAL_FILE
    if split.eval_fraction > 0 and kept_eval:
        eval_path = stale_eval
        hashes[EVAL_FILE] = write_lines_atomic(eval_path, (_dumps(examples[i].record) for i in kept_eval))
    elif stale_eval.exists():
        # A previous compile's eval file would otherwise be picked up as current.
        stale_eval.unlink()
    origins_path = out_dir / ORIGINS_FILE
    origin_lines = [
        _dumps({"split": name, "line": n, "source": examples[i].source, "origin": examples[i].origin}
               | ({"tokens": examples[i].tokens} if examples[i].tokens is not None else {}))
        for name, idx in (("train", train_idx), ("eval", kept_eval if eval_path else []))
        for n, i in enumerate(idx)
    ]
    hashes[ORIGINS_FILE] = write_lines_atomic(origins_path, origin_lines)

    return DatasetResult(
        train_path=train_path,
        eval_path=eval_path,
        origins_path=origins_path,
        per_source=counts,
        train_size=len(train_idx),
        eval_size=len(kept_eval) if eval_path else 0,
        leakage_removed=len(leakage),
        leakage=leakage,
        rejects=rejects_frame,
        hashes=hashes,
        stratify=split.stratify,
        token_counts=({"train": [examples[i].tokens for i in train_idx],
                       "eval": [examples[i].tokens for i in (kept_eval if eval_path else [])]}
                      if lengths is not None else {}),
        sequence_len=lengths.sequence_len if lengths is not None else None,
    )


__all__ = [
    "DatasetResult", "EVAL_FILE", "Example", "ORIGINS_FILE", "RULE_BUDGET", "RULE_EMPTY", "RULE_ERROR",
    "RULE_SAME_ANSWERS",
    "RenderError",
    "SourceCounts", "TRAIN_FILE", "build_dataset", "normalise", "render_record",
    "split_examples",
]
