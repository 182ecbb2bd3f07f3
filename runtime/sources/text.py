"""Plain text and Markdown files: a file or a glob, one record per file or per section.

``text``: columns ``path``, ``text`` (the whole file). Units: files.

``markdown``: columns ``path``, ``title``, ``heading``, ``text``. ``title`` is the file's
first level-1 heading (or a ``title:`` in YAML front matter, else the file name without its
extension). With ``split: heading`` a section starts at every heading of ``heading_level``
or higher (``heading_level: 2`` splits at ``#`` and ``##``; deeper headings stay inside the
section's text); ``heading`` is the heading's text and ``text`` the section's body without
the heading line. Text before the first heading is a section with a null heading. Sections
with an empty body (a title directly followed by a sub-heading) carry no text and are not
units. Headings inside fenced code blocks are not headings. Front matter is dropped.
Origins: ``docs/a.md#section-slug`` (GitHub's anchor rules, ``-1``, ``-2`` for repeats), or
the path for whole files and the text before the first heading.

A file that is not UTF-8 is one ``corrupt`` unit holding the file's bytes.
"""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path

from ._common import Part, concat_rejects, contract_rejects, read_bytes, refuse_binary, rejects

_ATX = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$")
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_SETEXT = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
_FRONT = re.compile(r"\A---[ \t]*\r?\n(.*?\r?\n)(?:---|\.\.\.)[ \t]*(?:\r?\n|\Z)", re.S)
_TITLE = re.compile(r"^title:[ \t]*['\"]?(.*?)['\"]?[ \t]*$", re.M)


def slugify(heading: str) -> str:
    """GitHub's heading anchors: lowercase, punctuation dropped, spaces to hyphens."""
    text = unicodedata.normalize("NFKC", heading).strip().lower()
    text = "".join(ch for ch in text if ch in " -_" or unicodedata.category(ch)[0] in "LNM")
    return text.replace(" ", "-")


def _strip_inline(text: str) -> str:
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", text)  # links and images keep their text
    return re.sub(r"[`*_]+", "", text).strip()


def _headings(lines: list[str]):
    """(line index, level, text, lines the heading occupies) for each heading outside fences."""
    fence: str | None = None
    out = []
    for i, line in enumerate(lines):
        m = _FENCE.match(line)
        if m:
            mark = m.group(1)
            if fence is None:
                fence = mark[0] * len(mark)
            elif mark[0] == fence[0] and len(mark) >= len(fence):
                fence = None
            continue
        if fence is not None:
            continue
        m = _ATX.match(line)
        if m:
            out.append((i, len(m.group(1)), _strip_inline(m.group(2) or ""), 1))
            continue
        m = _SETEXT.match(line)
        if m and i > 0 and lines[i - 1].strip() and not _ATX.match(lines[i - 1]) \
                and not _FENCE.match(lines[i - 1]) and (not out or out[-1][0] != i - 1):
            prev_blank_before = i < 2 or not lines[i - 2].strip()
            # Only a one-line paragraph: a dash line under a longer paragraph is ambiguous.
            if prev_blank_before:
                level = 1 if m.group(1)[0] == "=" else 2
                out.append((i - 1, level, _strip_inline(lines[i - 1]), 2))
    return out


def _front_matter(text: str) -> tuple[str, str | None]:
    m = _FRONT.match(text)
    if not m:
        return text, None
    title = _TITLE.search(m.group(1))
    return text[m.end():], (title.group(1).strip() or None) if title else None


def _sections(text: str, level: int, split: bool):
    """(heading or None, anchor or None, body) per section; plus the title heading."""
    lines = text.splitlines()
    heads = _headings(lines)
    h1 = next((h[2] for h in heads if h[1] == 1 and h[2]), None)
    if not split:
        return h1, [(None, None, text.strip())]
    cuts = [h for h in heads if h[1] <= level]
    sections = []
    seen: dict[str, int] = {}
    start, heading, anchor = 0, None, None
    for idx, _lvl, htext, span in cuts + [(len(lines), 0, None, 0)]:
        body = "\n".join(lines[start:idx]).strip("\n")
        if body.strip():
            sections.append((heading, anchor, body.strip()))
        if htext is None:
            break
        slug = slugify(htext)
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        heading, anchor, start = htext, (slug if n == 0 else f"{slug}-{n}"), idx + span
    return h1, sections


def read_file(path: Path, shown: str, spec, contract) -> Part:
    import polars as pl

    data = read_bytes(path, shown)
    refuse_binary(data, shown, spec.format)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        bad = rejects("corrupt", [f"not valid UTF-8 (byte 0x{data[exc.start]:02x} at offset {exc.start})"],
                      [shown], [data])
        frame = pl.DataFrame(schema=_schema(spec.format) | {"_origin": pl.String})
        return Part(frame, bad, 1)
    text = text.lstrip("\ufeff").replace("\r\n", "\n")
    if spec.format == "text":
        frame = pl.DataFrame({"path": [shown], "text": [text], "_origin": [shown]}, schema=_schema("text")
                             | {"_origin": pl.String})
        return checked_part(frame, frame.height, contract, shown)
    body, fm_title = _front_matter(text)
    return markdown_part(shown, fm_title, path.stem, body, spec, contract)


def markdown_part(shown: str, title: str | None, stem: str, body: str, spec, contract, *,
                  extra_units: int = 0) -> Part:
    """Markdown text split as ``spec`` says (``split``, ``heading_level``), checked against the
    contract. ``title`` wins over the first level-1 heading, which wins over ``stem``. HTML and
    DOCX sources convert to markdown and come through here, so all three split alike."""
    import polars as pl

    h1, sections = _sections(body, getattr(spec, "heading_level", 2), getattr(spec, "split", "heading") == "heading")
    title = title or h1 or stem
    frame = pl.DataFrame(
        {
            "path": [shown] * len(sections),
            "title": [title] * len(sections),
            "heading": [h for h, _, _ in sections],
            "text": [b for _, _, b in sections],
            "_origin": [f"{shown}#{a}" if a else shown for _, a, _ in sections],
        },
        schema=_schema("markdown") | {"_origin": pl.String},
    )
    return checked_part(frame, frame.height + extra_units, contract, shown)


def checked_part(frame, units: int, contract, shown: str) -> Part:
    """``frame``'s rows through the declared contract (no contract: all of them)."""
    from .contract import add_absent, check_frame, require_columns

    if not contract:
        return Part(frame, rejects("corrupt", [], []), units)
    require_columns(frame.columns, contract, shown)
    frame = add_absent(frame, contract)
    good, wrong = check_frame(frame, contract, parse_strings=False)
    return Part(good, concat_rejects([contract_rejects(wrong)]), units)


def _schema(fmt: str) -> dict:
    import polars as pl

    from llmspec.spec.models import MARKDOWN_COLUMNS, TEXT_COLUMNS

    return {c: pl.String for c in (TEXT_COLUMNS if fmt == "text" else MARKDOWN_COLUMNS)}
