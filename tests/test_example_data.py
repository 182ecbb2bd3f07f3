"""The example data: generated deterministically, committed without drift, defects as documented.

The defect counts are measured here from the files themselves (not taken from the generator) and
compared with the tables in the examples' READMEs, so the docs, the generator and the data agree.
"""
from __future__ import annotations

import importlib.util
import json
import mailbox
import re
import unicodedata
from collections import Counter
from email.message import Message
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SUPPORT = ROOT / "examples" / "support-bot"
DOCS = ROOT / "examples" / "docs-assistant"

EMAIL_RE = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
PHONE_RE = re.compile(r"\+\d{1,3}[ -]?(?:\(\d+\)[ -]?)?\d[\d -]{5,}\d")
SIXTEEN_RE = re.compile(r"(?<![\d+])(?:\d{4}[ -]?){3}\d{4}(?!\d)")
PLACEHOLDERS = {"n/a", "<no output>", "see above"}


def _load(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def support_gen():
    return _load(SUPPORT / "generate_data.py", "support_bot_generate_data")


@pytest.fixture(scope="module")
def docs_gen():
    return _load(DOCS / "generate_data.py", "docs_assistant_generate_data")


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def _readme_counts(readme: Path) -> dict[str, int]:
    """Every `| label | number |` table row of a README."""
    rows = re.findall(r"(?m)^\|\s*([^|]+?)\s*\|\s*(\d+)\s*\|\s*$", readme.read_text())
    counts = dict((label, int(n)) for label, n in rows)
    assert len(counts) == len(rows), "duplicate labels in README tables"
    return counts


def luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch) * (2 if i % 2 else 1)
        total += d - 9 if d > 9 else d
    return total % 10 == 0


# ---------------------------------------------------------------- determinism and drift


@pytest.mark.parametrize("which", ["support", "docs"])
def test_generation_is_byte_identical_and_matches_committed(which, tmp_path, support_gen, docs_gen):
    gen, committed = (support_gen, SUPPORT / "data") if which == "support" else (docs_gen, DOCS / "docs")
    a, b = tmp_path / "a", tmp_path / "b"
    assert gen.main(["--out", str(a)]) == 0
    assert gen.main(["--out", str(b)]) == 0
    first, second = _files(a), _files(b)
    assert first and first == second
    assert _files(committed) == first, (
        f"{committed} drifted from its generator: run python {committed.parent}/generate_data.py")


def test_committed_example_data_is_small():
    total = sum(len(v) for v in {**_files(SUPPORT / "data"), **_files(DOCS / "docs")}.values())
    assert total < 1_000_000


# ---------------------------------------------------------------- tickets.jsonl


def _norm(text: str) -> str:
    return " ".join(unicodedata.normalize("NFKC", text).lower().split())


def analyse_tickets(raw: bytes) -> tuple[dict[str, int], list[dict]]:
    """Counts each kind of defect in the export; also returns the rows a perfect cleaner keeps."""
    c: Counter[str] = Counter()
    seen_lines: set[bytes] = set()
    rows: list[dict] = []
    assert raw.endswith(b"\n")
    for line in raw[:-1].split(b"\n"):
        c["lines in total"] += 1
        if line in seen_lines:
            c["exact duplicate line"] += 1
            continue
        seen_lines.add(line)
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError:
            c["line with invalid UTF-8 bytes"] += 1
            continue
        try:
            rows.append(json.loads(text))
        except json.JSONDecodeError:
            kind = "truncated JSON" if text.startswith("{") else "not JSON at all"
            c[f"corrupt line: {kind}"] += 1

    kept: list[dict] = []
    seen_keys: set[str] = set()
    for row in rows:
        assert list(row)[:3] == ["ticket_id", "question", "answer"]
        q, a = row["question"], row["answer"]
        if "product" not in row:
            c["`product` key missing"] += 1
        elif row["product"] is None:
            c["`product` null"] += 1
        c["email address in question"] += bool(EMAIL_RE.search(q))
        c["phone number in question"] += bool(PHONE_RE.search(q))
        for m in SIXTEEN_RE.findall(q):
            digits = re.sub(r"\D", "", m)
            c["valid test card number" if luhn_ok(digits) else "16-digit order number (fails Luhn)"] += 1
        if not a.strip():
            c["blank answer"] += 1
            continue
        if a.strip().lower() in PLACEHOLDERS:
            c["placeholder answer (N/A, <no output>, see above)"] += 1
            continue
        key = _norm(q) + "\x00" + _norm(a)
        if key in seen_keys:
            c["duplicate differing only in whitespace/case"] += 1
            continue
        seen_keys.add(key)
        words = _norm(q).split()
        if any(k["answer"] == a and _one_word_apart(words, _norm(k["question"]).split()) for k in kept):
            c["near-duplicate (one word changed)"] += 1
            continue
        kept.append(row)
    c["rows a perfect cleaner keeps"] = len(kept)
    return dict(c), kept


def _one_word_apart(a: list[str], b: list[str]) -> bool:
    return len(a) == len(b) and sum(x != y for x, y in zip(a, b)) == 1


@pytest.fixture(scope="module")
def tickets():
    return analyse_tickets((SUPPORT / "data" / "tickets.jsonl").read_bytes())


def test_ticket_rows_have_the_documented_fields_and_canonical_answers(tickets, support_gen):
    _, kept = tickets
    canonical = {v["answer"] for v in support_gen.CANONICAL.values()}
    assert 5 <= len(canonical) <= 6
    assert {r["answer"] for r in kept} == canonical
    by_answer = Counter(r["answer"] for r in kept)
    assert min(by_answer.values()) >= 30, "each answer needs many paraphrased questions"
    assert len({_norm(r["question"]) for r in kept}) == len(kept)
    for r in kept:
        assert re.fullmatch(r"T-\d{5}", r["ticket_id"])
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", r["created_at"])
        assert r.get("product") in (None, "Acme Router", "Acme Cloud Backup", "Acme Smart Plug")


def test_canonical_answers_are_short_with_distinct_key_phrases(support_gen):
    answers = [v["answer"] for v in support_gen.CANONICAL.values()]
    for v in support_gen.CANONICAL.values():
        assert v["key_phrase"].lower() in v["answer"].lower()
        assert sum(v["key_phrase"].lower() in a.lower() for a in answers) == 1
        assert v["answer"].count(". ") == 0 and len(v["answer"]) <= 90


def test_held_out_prompts_do_not_occur_in_the_data(support_gen):
    data = b"".join(_files(SUPPORT / "data").values()).decode("utf-8", "replace")
    haystack = _norm(data)
    for prompt in support_gen.HELD_OUT_PROMPTS.values():
        assert _norm(prompt) not in haystack


def test_sixteen_digit_numbers_include_luhn_failures_and_test_cards(tickets):
    counts, _ = tickets
    assert counts["16-digit order number (fails Luhn)"] > 0
    assert counts["valid test card number"] > 0
    raw = (SUPPORT / "data" / "tickets.jsonl").read_text("utf-8", "replace")
    assert "4111 1111 1111 1111" in raw


# ---------------------------------------------------------------- support.mbox


def _addr(msg: Message, header: str) -> str:
    m = re.search(r"<([^<>]*)>?\s*$", msg.get(header, ""))
    return m.group(1) if m else msg.get(header, "")


def _is_agent(msg: Message) -> bool:
    return _addr(msg, "From").endswith("@acme.example")


def _text(msg: Message) -> str | None:
    """The plain-text body, decoded strictly; None when it cannot be."""
    part = next((p for p in msg.walk() if p.get_content_type() == "text/plain"), None)
    if part is None:
        return None
    try:
        return part.get_payload(decode=True).decode(part.get_content_charset() or "ascii")
    except (UnicodeDecodeError, LookupError):
        return None


def _unquoted(text: str) -> list[str]:
    return [ln for ln in text.splitlines() if not ln.startswith(">")]


def analyse_mbox(path: Path) -> tuple[dict[str, int], list[Message]]:
    msgs = list(mailbox.mbox(str(path), factory=None, create=False))
    c: Counter[str] = Counter(messages=len(msgs))
    children: Counter[str] = Counter(m["In-Reply-To"] for m in msgs if m["In-Reply-To"])
    for m in msgs:
        if not m["Message-ID"]:
            c["malformed (header block cut off, no Message-ID)"] += 1
            continue
        if m.is_multipart():
            c["multipart/alternative (text + HTML)"] += m.get_content_type() == "multipart/alternative"
        enc = (m.get("Content-Transfer-Encoding") or "").lower()
        c["base64 body"] += enc == "base64"
        c["quoted-printable body"] += enc == "quoted-printable"
        text = _text(m)
        if text is None:
            c["undecodable body (not the declared UTF-8)"] += 1
            continue
        if _is_agent(m):
            c["agent replies (from *@acme.example)"] += 1
            continue
        own = _unquoted(text)
        c['"Sent from my phone" signature'] += "Sent from my phone" in own
        c["customer message with a phone number"] += any(PHONE_RE.search(ln) for ln in own)
        if not m["In-Reply-To"] and children[m["Message-ID"]]:
            c["threads (customer question + agent replies)"] += 1
            if _thread_size(m["Message-ID"], msgs) == 4:
                c["threads with two exchanges"] += 1
    c["`>From ` escaped body line"] = path.read_bytes().count(b"\n>From ")
    return dict(c), msgs


def _thread_size(root: str, msgs: list[Message]) -> int:
    return 1 + sum(1 for m in msgs if m["References"] and m["References"].split()[0] == root)


@pytest.fixture(scope="module")
def mbox():
    return analyse_mbox(SUPPORT / "data" / "support.mbox")


def test_mbox_threads_resolve_and_reference_chains_are_complete(mbox):
    counts, msgs = mbox
    by_id = {m["Message-ID"]: m for m in msgs if m["Message-ID"]}
    replies = [m for m in msgs if m["In-Reply-To"]]
    assert len(replies) >= 30
    for m in replies:
        assert m["In-Reply-To"] in by_id, m["Message-ID"]
        refs = m["References"].split()
        assert refs[-1] == m["In-Reply-To"] and all(r in by_id for r in refs)
        assert m["Subject"].startswith("Re: ")
    for m in msgs:
        if m["Message-ID"]:
            for h in ("From", "To", "Subject", "Date"):
                assert m[h], (m["Message-ID"], h)


def test_agent_replies_quote_then_answer_then_sign(mbox, support_gen):
    _, msgs = mbox
    canonical = [v["answer"] for v in support_gen.CANONICAL.values()]
    agents = [m for m in msgs if m["Message-ID"] and _is_agent(m)]
    assert agents
    for m in agents:
        text = _text(m)
        lines = text.splitlines()
        assert re.fullmatch(r"On .+, .+ wrote:", lines[0]) and lines[1].startswith(">")
        own = "\n".join(_unquoted(text))
        assert sum(a in own for a in canonical) == 1
        assert re.search(r"\n-- \n.+\n.+\n$", text), "agent reply must end with a signature"


def test_encoded_and_multipart_messages_decode(mbox):
    _, msgs = mbox
    good = [m for m in msgs if m["Message-ID"]]
    qp = next(m for m in good if m.get("Content-Transfer-Encoding") == "quoted-printable")
    assert "Grüße" in _text(qp) and "=C3=BC" in qp.get_payload()
    # The agent's reply quotes what the customer wrote, so the decoded text must appear there.
    for m in (qp, next(m for m in good if m.get("Content-Transfer-Encoding") == "base64")):
        reply = next(r for r in good if r["In-Reply-To"] == m["Message-ID"])
        quoted = [ln[2:] for ln in _text(reply).splitlines() if ln.startswith("> ")]
        own = [ln for ln in _text(m).splitlines() if ln.strip()]
        assert own and all(ln in quoted for ln in own)
    alt = next(m for m in good if m.is_multipart())
    assert [p.get_content_type() for p in alt.get_payload()] == ["text/plain", "text/html"]
    assert "<p>" in alt.get_payload()[1].get_payload(decode=True).decode()


def test_broken_messages_are_really_broken(mbox):
    _, msgs = mbox
    cut = [m for m in msgs if not m["Message-ID"]]
    assert len(cut) == 1 and not cut[0]["Date"]
    assert any(type(d).__name__ == "MissingHeaderBodySeparatorDefect" for d in cut[0].defects)
    bad = [m for m in msgs if m["Message-ID"] and _text(m) is None]
    assert len(bad) == 1
    raw = bad[0].get_payload(decode=True)
    with pytest.raises(UnicodeDecodeError):
        raw.decode("utf-8")


# ---------------------------------------------------------------- docs-assistant


def analyse_docs(folder: Path) -> dict[str, int]:
    """Splits each file into heading sections the way a reader must: `#` inside fences is code."""
    c: Counter[str] = Counter()
    for path in sorted(folder.glob("*.md")):
        c["markdown files"] += 1
        sections: list[list[str]] = []
        fence: list[str] | None = None
        for line in path.read_text().splitlines():
            if line.startswith("```"):
                if fence is None:
                    fence = []
                else:
                    c["fenced code block with `#` comment lines"] += any(f.startswith("#") for f in fence)
                    fence = None
            elif fence is not None:
                fence.append(line)
            elif re.match(r"#{1,2} ", line):
                c["`#` title headings"] += line.startswith("# ")
                sections.append([])
                continue
            if sections:
                sections[-1].append(line)
        assert fence is None, f"unclosed fence in {path.name}"
        c["heading sections"] += len(sections)
        bodies = ["\n".join(s).strip() for s in sections]
        c["empty section"] += sum(not b for b in bodies)
        c["placeholder section (TODO)"] += sum(b.startswith("TODO") for b in bodies)
    return dict(c)


def test_docs_have_one_title_per_file_and_enough_sections():
    counts = analyse_docs(DOCS / "docs")
    assert 4 <= counts["markdown files"] <= 6
    assert 20 <= counts["heading sections"] <= 40
    assert counts["`#` title headings"] == counts["markdown files"]
    for path in (DOCS / "docs").glob("*.md"):
        assert path.read_text().startswith("# ")


# ---------------------------------------------------------------- READMEs state the real figures


def test_support_readme_states_the_planted_defects(tickets, mbox):
    measured = {**tickets[0], **mbox[0]}
    stated = _readme_counts(SUPPORT / "README.md")
    assert stated == measured


def test_docs_readme_states_the_planted_defects():
    assert _readme_counts(DOCS / "README.md") == analyse_docs(DOCS / "docs")
