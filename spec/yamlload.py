"""Load one YAML file into plain Python data, with a position for every key and item.

This is the only door YAML comes in through, and it sits on the `llmspec validate`
path (pre-commit), so it must refuse hostile input with a ``SpecError`` and never
a traceback. ruamel.yaml is used only as a scanner/parser: we consume its event
stream and build dict/list/str/int/float/bool/None ourselves with an explicit
stack, so nothing is ever constructed from a tag and deep nesting cannot hit
Python's recursion limit.

Decisions (documented in the README's spec-language section too):

- Scalars follow the YAML 1.2 core schema: ``yes``/``on`` stay strings, ``1e-4``
  is a float, ``~``/``null``/empty are None, timestamps stay strings. A decimal
  integer too long for Python's int conversion limit stays a string.
- Keys are always strings. A scalar key is taken exactly as written (``1:`` is
  the key ``"1"``, ``true:`` is ``"true"``), so ``1:`` and ``"1":`` collide as
  duplicates. An empty key, a key tagged with anything but ``!!str``, and a
  sequence or mapping as key are refused (``yaml-key-type``).
- Merge keys (``<<: *base`` or ``<<: [*a, *b]``) are supported: keys written in
  the mapping win over merged ones, earlier sources win over later ones, and a
  merged key keeps the position where it was written. A merge value that is not
  a mapping (or a list of mappings) is refused (``yaml-merge``). A quoted
  ``"<<"`` is an ordinary key.
- Aliases are expanded into independent copies. The total number of nodes added
  by alias expansion is capped (``ALIAS_BUDGET``); sizes are memoized per anchor,
  so a billion-laughs file fails at the first alias over budget without building
  anything. Expanded content keeps the positions of the anchored definition; the
  alias itself is the position of the value.
- Nesting counts collections: the root mapping is level 1, and a collection at
  level ``MAX_DEPTH + 1`` is refused, including when an alias would expand to it.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass, field
from pathlib import Path

from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError
from ruamel.yaml.events import (
    AliasEvent,
    CollectionEndEvent,
    DocumentStartEvent,
    MappingStartEvent,
    ScalarEvent,
    SequenceStartEvent,
)

from llmspec.spec.errors import Diagnostic, Pos, SpecError

MAX_DEPTH = 64
ALIAS_BUDGET = 10_000

_STD = "tag:yaml.org,2002:"
_STR, _INT, _FLOAT, _BOOL, _NULL = (_STD + t for t in ("str", "int", "float", "bool", "null"))
_MAP, _SEQ = _STD + "map", _STD + "seq"
_ALLOWED_TAGS = {_STR, _INT, _FLOAT, _BOOL, _NULL, _MAP, _SEQ}

_INT10 = re.compile(r"[-+]?[0-9]+")
_INT8 = re.compile(r"0o[0-7]+")
_INT16 = re.compile(r"0x[0-9a-fA-F]+")
_FLOAT_RE = re.compile(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?")
_INF = re.compile(r"[-+]?\.(inf|Inf|INF)")
_NAN = re.compile(r"\.(nan|NaN|NAN)")
_NULLS = {"", "~", "null", "Null", "NULL"}
_TRUES = {"true", "True", "TRUE"}
_FALSES = {"false", "False", "FALSE"}

# ruamel's reader refuses these (YAML's non-printable set); we refuse them first, with a position.
_NON_PRINTABLE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x84\x86-\x9f\ufffe\uffff]")
_SURROGATE = re.compile("[\ud800-\udfff]")
# ruamel's marks count only these as line breaks (YAML 1.2), so our positions must too.
_BREAK = re.compile(r"\r\n|\r|\n")
_LEADING_WS = re.compile(r"[ \t]*")
_CONTROL_NAMES = {0: "NUL", 0x1B: "ESC", 0x7F: "DEL"}
# ruamel names tokens by their internal names; say what they mean to someone editing YAML.
_TOKEN_WORDS = {
    "<block end>": "the end of the indented block",
    "<block mapping start>": "a mapping at a different indentation",
    "<block sequence start>": "a list at a different indentation",
    "<stream end>": "the end of the file",
    "<document start>": "'---'",
    "<document end>": "'...'",
}
_TAB_PROBLEM = "found character '\\t' that cannot start any token"


class _Merge:
    """Path component for the value of a ``<<`` key; such paths never reach Positions."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "<<merge>>"


_MERGE = _Merge()


@dataclass
class Positions:
    key: dict[tuple, Pos] = field(default_factory=dict)
    value: dict[tuple, Pos] = field(default_factory=dict)

    def at(self, path: tuple) -> Pos | None:
        """Value position of path; else key position; else the nearest ancestor's (walk up). None if nothing known."""
        path = tuple(path)
        while True:
            pos = self.value.get(path) or self.key.get(path)
            if pos is not None or not path:
                return pos
            path = path[:-1]

    def key_at(self, path: tuple) -> Pos | None:
        """Key position of path; else its value position; else the nearest ancestor's."""
        path = tuple(path)
        pos = self.key.get(path)
        return pos if pos is not None else self.at(path)

    def merge_from(self, other: "Positions", prefix: tuple = ()) -> None:
        """Copy other's entries under prefix, overwriting ours (Pos keeps other's file)."""
        prefix = tuple(prefix)
        for path, pos in other.key.items():
            self.key[prefix + path] = pos
        for path, pos in other.value.items():
            self.value[prefix + path] = pos


@dataclass
class Loaded:
    data: dict
    positions: Positions
    path: str


def load_yaml_file(path: Path, display_path: str | None = None) -> Loaded:
    path = Path(path)
    shown = display_path if display_path is not None else str(path)
    try:
        if path.is_dir():
            raise SpecError(Diagnostic("file-not-found", f"{shown} is a directory, not a YAML file",
                                       pos=Pos(shown)))
        raw = path.read_bytes()
    except FileNotFoundError:
        raise SpecError(Diagnostic("file-not-found", f"file not found: {shown}", pos=Pos(shown))) from None
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise SpecError(Diagnostic("file-unreadable", f"cannot read {shown}: {reason}",
                                   pos=Pos(shown))) from None
    return load_yaml_text(raw, shown)


def load_yaml_text(data: bytes | str, display_path: str) -> Loaded:
    text = _decode(data, display_path)
    lines = _Lines(text)
    bad = _NON_PRINTABLE.search(text)
    if bad:
        code = ord(bad.group())
        name = _CONTROL_NAMES.get(code)
        label = f"U+{code:04X}" + (f" ({name})" if name else "")
        raise SpecError(Diagnostic(
            "yaml-binary", f"control character {label} is not allowed in YAML",
            pos=lines.pos(display_path, bad.start()),
            hint="this looks like a binary file; an llmspec spec is UTF-8 text"))
    builder = _Builder(display_path, text, lines)
    return builder.run()


def _decode(data: bytes | str, display: str) -> str:
    if isinstance(data, str):
        text = data[1:] if data.startswith("\ufeff") else data
        bad = _SURROGATE.search(text)
        if bad:
            raise SpecError(Diagnostic(
                "yaml-encoding", f"text holds a lone surrogate U+{ord(bad.group()):04X}, which is not valid Unicode",
                pos=_Lines(text).pos(display, bad.start())))
        return text
    raw = bytes(data)
    skip = 3 if raw.startswith(b"\xef\xbb\xbf") else 0
    body = raw[skip:]
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as exc:
        good = body[:exc.start].decode("utf-8")
        # A binary file usually shows a control byte before its first invalid sequence.
        ctrl = _NON_PRINTABLE.search(good)
        if ctrl:
            code = ord(ctrl.group())
            name = _CONTROL_NAMES.get(code)
            label = f"U+{code:04X}" + (f" ({name})" if name else "")
            raise SpecError(Diagnostic(
                "yaml-binary", f"control character {label} is not allowed in YAML",
                pos=_Lines(good).pos(display, ctrl.start()),
                hint="this looks like a binary file; an llmspec spec is UTF-8 text")) from None
        offset = exc.start + skip
        raise SpecError(Diagnostic(
            "yaml-encoding",
            f"not valid UTF-8: byte 0x{body[exc.start]:02x} at byte offset {offset} cannot be decoded",
            pos=_Lines(good).pos(display, len(good)),
            hint="save the file as UTF-8")) from None


class _Lines:
    """Offsets -> 1-based line/column, counting line breaks the way ruamel's marks do."""

    def __init__(self, text: str):
        self.text = text
        self.starts = [0] + [m.end() for m in _BREAK.finditer(text)]

    def pos(self, display: str, offset: int) -> Pos:
        i = bisect.bisect_right(self.starts, offset) - 1
        return Pos(display, i + 1, offset - self.starts[i] + 1)

    def tab_lines(self) -> list[tuple[int, int, bool]]:
        """(0-based line, 0-based col of the first tab, has content) for lines with a tab in their indentation."""
        out = []
        text = self.text
        if "\t" not in text:
            return out
        n = len(text)
        for line, start in enumerate(self.starts):
            lead = _LEADING_WS.match(text, start).group()
            if "\t" in lead:
                after = start + len(lead)
                has_content = after < n and text[after] not in "\r\n"
                out.append((line, lead.index("\t"), has_content))
        return out


def _tag_label(tag: str) -> str:
    return "!!" + tag[len(_STD):] if tag.startswith(_STD) else tag


class _Anchor:
    __slots__ = ("name", "open", "value", "key_text", "size", "height", "path", "start", "end")

    def __init__(self, name: str, path: tuple, start: int):
        self.name = name
        self.open = True
        self.value = None
        self.key_text: str | None = None
        self.size = 1
        self.height = 0
        self.path = path
        self.start = start
        self.end = start


class _Frame:
    __slots__ = ("is_map", "path", "level", "items", "size", "height", "anchor", "entry_start",
                 "pos", "key", "key_pos", "key_end_line", "seen")

    def __init__(self, is_map: bool, path: tuple, level: int, anchor, entry_start: int, pos: Pos):
        self.is_map = is_map
        self.path = path
        self.level = level
        self.items: list = []
        self.size = 1
        self.height = 0
        self.anchor = anchor
        self.entry_start = entry_start
        self.pos = pos
        self.key = None        # pending mapping key (str or _MERGE) while its value is awaited
        self.key_pos: Pos | None = None
        self.key_end_line = 0
        self.seen: dict = {}   # key -> line of its first occurrence


def _copy(value):
    # Depth is bounded by MAX_DEPTH before any copy happens, so recursion is safe here.
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value


class _Builder:
    def __init__(self, display: str, text: str, lines: _Lines):
        self.display = display
        self.text = text
        self.lines = lines
        self.tabs = lines.tab_lines()
        self.scalar_spans: list[tuple[int, int]] = []  # 0-based line ranges inside block/quoted scalars
        self.stack: list[_Frame] = []
        self.entries: list[tuple[tuple, Pos | None, Pos]] = []
        self.anchors: dict[str, _Anchor] = {}
        self.expanded = 0
        self.documents = 0
        self.root: dict | None = None

    # -- driver ---------------------------------------------------------------------------

    def run(self) -> Loaded:
        events = YAML(typ="safe", pure=True).parse(self.text)
        try:
            while True:
                try:
                    event = next(events)
                except StopIteration:
                    break
                except YAMLError as exc:
                    raise self._syntax(exc) from None
                except Exception as exc:  # a ruamel bug on hostile input must still not escape
                    raise self._fail(None, "yaml-syntax",
                                     f"the YAML parser could not read this file ({type(exc).__name__})") from None
                self._feed(event)
        except SpecError as err:
            self._prefer_tab(err)
            raise
        finally:
            events.close()
        self._prefer_tab(None)
        if self.root is None:
            raise SpecError(Diagnostic("yaml-empty", "file is empty (nothing but whitespace or comments)",
                                       pos=Pos(self.display, 1, 1),
                                       hint="an llmspec spec is a YAML mapping, e.g. `llmspec: 1`"))
        return Loaded(data=self.root, positions=self._positions(), path=self.display)

    def _positions(self) -> Positions:
        positions = Positions()
        keys, values = positions.key, positions.value
        for path, key_pos, value_pos in self.entries:
            if _MERGE in path:
                continue
            if key_pos is not None:
                keys[path] = key_pos
            values[path] = value_pos
        return positions

    # -- errors ---------------------------------------------------------------------------

    def _pos(self, mark) -> Pos:
        return Pos(self.display, mark.line + 1, mark.column + 1)

    def _fail(self, mark, code: str, message: str, hint: str | None = None, pos: Pos | None = None) -> SpecError:
        if pos is None:
            pos = self._pos(mark) if mark is not None else Pos(self.display, 1, 1)
        return SpecError(Diagnostic(code, message, pos=pos, hint=hint))

    def _syntax(self, exc: YAMLError) -> SpecError:
        problem = getattr(exc, "problem", None)
        context = getattr(exc, "context", None)
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        context_mark = getattr(exc, "context_mark", None)
        message = " ".join(str(problem or context or "invalid YAML").split())
        if problem == _TAB_PROBLEM:
            return self._fail(mark, "yaml-syntax",
                              "tab character outside quotes; YAML separates values with spaces",
                              hint="use spaces, or quote the value if the tab belongs to it")
        for word, meaning in _TOKEN_WORDS.items():
            message = message.replace(f"'{word}'", meaning).replace(word, meaning)
        if problem and context:
            context = " ".join(str(context).split())
            if context_mark is not None and (mark is None or context_mark.line != mark.line
                                             or context_mark.column != mark.column):
                message += f" ({context} started at line {context_mark.line + 1}, column {context_mark.column + 1})"
            else:
                message += f" ({context})"
        return self._fail(mark, "yaml-syntax", message)

    def _prefer_tab(self, err: SpecError | None) -> None:
        """A tab in indentation explains most errors after it better than the error itself does."""
        if not self.tabs:
            return
        limit = None
        if err is not None:
            where = err.first.pos
            limit = (where.line - 1) if where is not None and where.line is not None else None
        for line, col, has_content in self.tabs:
            if limit is not None and line > limit:
                break
            if not has_content and line != limit:
                continue
            if any(first < line <= last for first, last in self.scalar_spans):
                continue
            raise SpecError(Diagnostic(
                "yaml-tab-indent", "tab character in indentation; YAML indents with spaces only",
                pos=Pos(self.display, line + 1, col + 1),
                hint="replace the leading tabs with spaces")) from None

    # -- events ---------------------------------------------------------------------------

    def _feed(self, event) -> None:
        if isinstance(event, (ScalarEvent, AliasEvent, MappingStartEvent, SequenceStartEvent)):
            if isinstance(event, ScalarEvent) and event.style is not None:
                self._note_span(event)
            if not self.stack:
                self._root(event)
            elif self.stack[-1].is_map and self.stack[-1].key is None:
                self._key(self.stack[-1], event)
            else:
                self._value(self.stack[-1], event)
        elif isinstance(event, CollectionEndEvent):
            self._close()
        elif isinstance(event, DocumentStartEvent):
            self.documents += 1
            if self.documents > 1:
                raise self._fail(event.start_mark, "yaml-multi-document",
                                 "a second YAML document starts here; an llmspec file holds exactly one",
                                 hint="remove the `---` separator and merge the documents")

    def _note_span(self, event) -> None:
        start, end = event.start_mark, event.end_mark
        last = end.line if end.column > 0 else end.line - 1
        if last > start.line:
            self.scalar_spans.append((start.line, last))

    def _root(self, event) -> None:
        if isinstance(event, MappingStartEvent):
            self._check_collection_tag(event, _MAP)
            root_pos = Pos(self.display, 1, 1)
            self.entries.append(((), None, root_pos))
            self._push(True, (), 1, event, 0, root_pos)
            return
        if (isinstance(event, ScalarEvent) and event.tag is None and event.style is None
                and event.value == "" and event.anchor is None):
            raise SpecError(Diagnostic("yaml-empty", "file is empty (nothing but whitespace or comments)",
                                       pos=Pos(self.display, 1, 1),
                                       hint="an llmspec spec is a YAML mapping, e.g. `llmspec: 1`"))
        kind = {ScalarEvent: "a scalar", SequenceStartEvent: "a sequence", AliasEvent: "an alias"}.get(
            type(event), "not a mapping")
        raise self._fail(event.start_mark, "yaml-not-mapping",
                         f"the top level of the file must be a mapping of keys to values, not {kind}",
                         hint="start with `llmspec: 1` and the other top-level keys")

    def _push(self, is_map: bool, path: tuple, level: int, event, entry_start: int, pos: Pos) -> None:
        anchor = None
        if event.anchor is not None:
            anchor = _Anchor(event.anchor, path, entry_start)
            self.anchors[event.anchor] = anchor
        self.stack.append(_Frame(is_map, path, level, anchor, entry_start, pos))

    def _key(self, frame: _Frame, event) -> None:
        pos = self._pos(event.start_mark)
        if isinstance(event, ScalarEvent):
            tag = event.tag
            if tag is not None:
                self._check_tag(event, tag)
                if tag != _STR:
                    raise self._fail(event.start_mark, "yaml-key-type",
                                     f"mapping keys must be strings, not {_tag_label(tag)}",
                                     hint="drop the tag or use !!str")
            elif event.style is None and event.value == "":
                raise self._fail(event.start_mark, "yaml-key-type", "empty (null) mapping key",
                                 hint="give the key a name")
            key = event.value
            if event.anchor is not None:
                anchor = _Anchor(event.anchor, (), len(self.entries))
                anchor.open = False
                anchor.value = self._scalar(event)
                anchor.key_text = key
                self.anchors[event.anchor] = anchor
            if tag is None and event.style is None and key == "<<":
                key = _MERGE
        elif isinstance(event, AliasEvent):
            anchor = self._lookup(event)
            self._spend(event, 1)
            if anchor.key_text is None:
                raise self._fail(event.start_mark, "yaml-key-type",
                                 f"alias *{event.anchor} used as a key does not refer to a string",
                                 hint="mapping keys must be strings")
            key = anchor.key_text
        else:
            what = "mapping" if isinstance(event, MappingStartEvent) else "sequence"
            raise self._fail(event.start_mark, "yaml-key-type",
                             f"a {what} cannot be a mapping key; keys must be strings")
        if key in frame.seen:
            shown = "<<" if key is _MERGE else key
            raise self._fail(event.start_mark, "yaml-duplicate-key",
                             f"duplicate key '{shown}' (first defined on line {frame.seen[key]})",
                             hint="each key may appear once per mapping; remove or rename one")
        frame.seen[key] = pos.line
        frame.key = key
        frame.key_pos = pos
        frame.key_end_line = event.end_mark.line

    def _child(self, frame: _Frame, pos: Pos) -> tuple[tuple, Pos]:
        if frame.is_map:
            return frame.path + (frame.key,), frame.key_pos
        return frame.path + (len(frame.items),), pos

    def _value(self, frame: _Frame, event) -> None:
        pos = self._pos(event.start_mark)
        if isinstance(event, ScalarEvent):
            value = self._scalar(event)
            if event.style == "|":
                pos = self._literal_block(event, pos)
            if (frame.is_map and event.style is None and event.value == ""
                    and event.start_mark.line > frame.key_end_line):
                pos = frame.key_pos  # ruamel marks an empty value at the next token, lines away
            path, key_pos = self._child(frame, pos)
            start = len(self.entries)
            self.entries.append((path, key_pos, pos))
            if event.anchor is not None:
                anchor = _Anchor(event.anchor, path, start)
                anchor.open = False
                anchor.value = value
                anchor.end = start + 1
                if event.tag in (None, _STR) and not (event.style is None and event.value == ""):
                    anchor.key_text = event.value
                self.anchors[event.anchor] = anchor
            self._attach(frame, value, 1, 0, start, pos)
        elif isinstance(event, AliasEvent):
            anchor = self._lookup(event)
            self._spend(event, anchor.size)
            if frame.level + anchor.height > MAX_DEPTH:
                raise self._too_deep(event.start_mark, f" once alias *{event.anchor} is expanded")
            path, key_pos = self._child(frame, pos)
            start = len(self.entries)
            self.entries.append((path, key_pos, pos))
            cut = len(anchor.path)
            for sub, sub_key, sub_value in self.entries[anchor.start + 1:anchor.end]:
                rel = sub[cut:]
                if _MERGE not in rel:
                    self.entries.append((path + rel, sub_key, sub_value))
            self._attach(frame, _copy(anchor.value), anchor.size, anchor.height, start, pos)
        else:
            is_map = isinstance(event, MappingStartEvent)
            level = frame.level + 1
            if level > MAX_DEPTH:
                raise self._too_deep(event.start_mark, "")
            self._check_collection_tag(event, _MAP if is_map else _SEQ)
            path, key_pos = self._child(frame, pos)
            start = len(self.entries)
            self.entries.append((path, key_pos, pos))
            self._push(is_map, path, level, event, start, pos)

    def _literal_block(self, event, pos: Pos) -> Pos:
        """pos, knowing where the block's text starts: the line after the ``|`` header (literal
        style keeps every line, so text line k is header line + k), indented like its first
        non-blank line."""
        first = event.start_mark.line + 1  # 0-based line of the block's first text line
        starts, text = self.lines.starts, self.text
        indent = None
        for line in range(first, len(starts)):
            lead = _LEADING_WS.match(text, starts[line]).group()
            after = starts[line] + len(lead)
            if after < len(text) and text[after] not in "\r\n":
                indent = len(lead)
                break
        if indent is None:
            return pos
        return Pos(pos.path, pos.line, pos.col, content=(first + 1, indent + 1))

    def _close(self) -> None:
        frame = self.stack.pop()
        value = self._finish_map(frame) if frame.is_map else frame.items
        height = frame.height + 1
        if frame.anchor is not None:
            anchor = frame.anchor
            anchor.open = False
            anchor.value = value
            anchor.size = frame.size
            anchor.height = height
            anchor.end = len(self.entries)
        if self.stack:
            self._attach(self.stack[-1], value, frame.size, height, frame.entry_start, frame.pos)
        else:
            self.root = value

    def _attach(self, frame: _Frame, value, size: int, height: int, start: int, pos: Pos) -> None:
        frame.size += size
        frame.height = max(frame.height, height)
        if not frame.is_map:
            frame.items.append(value)
            return
        key = frame.key
        frame.key = None
        if key is _MERGE:
            if isinstance(value, dict):
                sources, listed = [value], False
            elif isinstance(value, list) and all(isinstance(v, dict) for v in value):
                sources, listed = value, True
            else:
                raise SpecError(Diagnostic(
                    "yaml-merge", "the value of a merge key `<<` must be a mapping or a list of mappings",
                    pos=pos, hint="write `<<: *anchor` where the anchor names a mapping"))
            frame.items.append((_MERGE, (sources, listed, start, len(self.entries))))
        else:
            frame.items.append((key, value))

    def _finish_map(self, frame: _Frame) -> dict:
        out: dict = {}
        merges = []
        for key, value in frame.items:
            if key is _MERGE:
                merges.append(value)
            else:
                out[key] = value
        if not merges:
            return out
        written = set(out)
        result: dict = {}
        base = len(frame.path) + 1
        for key, value in frame.items:
            if key is not _MERGE:
                result[key] = value
                continue
            sources, listed, start, end = value
            chosen: dict = {}
            for index, source in enumerate(sources):
                for mkey, mvalue in source.items():
                    if mkey not in written and mkey not in chosen:
                        chosen[mkey] = index
                        result[mkey] = mvalue
            skip = base + 1 if listed else base
            for sub, sub_key, sub_value in self.entries[start:end]:
                if len(sub) <= skip:
                    continue
                index = sub[base] if listed else 0
                rel = sub[skip:]
                if chosen.get(rel[0]) == index and _MERGE not in rel:
                    self.entries.append((frame.path + rel, sub_key, sub_value))
        return result

    # -- anchors and aliases ---------------------------------------------------------------

    def _lookup(self, event) -> _Anchor:
        anchor = self.anchors.get(event.anchor)
        if anchor is None:
            raise self._fail(event.start_mark, "yaml-syntax",
                             f"alias *{event.anchor} refers to no anchor &{event.anchor} defined before it")
        if anchor.open:
            raise self._fail(event.start_mark, "yaml-alias-budget",
                             f"alias *{event.anchor} is inside the node it refers to, so it expands without end",
                             hint="an alias may only refer to a node that is complete before it")
        return anchor

    def _spend(self, event, size: int) -> None:
        self.expanded += size
        if self.expanded > ALIAS_BUDGET:
            raise self._fail(event.start_mark, "yaml-alias-budget",
                             f"aliases expand to more than {ALIAS_BUDGET} nodes (alias *{event.anchor} "
                             f"alone is {size}); refusing to expand further",
                             hint="this looks like an alias bomb ('billion laughs'); write the values out "
                                  "or use `extends`")

    def _too_deep(self, mark, why: str) -> SpecError:
        return self._fail(mark, "yaml-too-deep", f"nesting is deeper than {MAX_DEPTH} levels{why}",
                          hint="an llmspec spec needs only a few levels; flatten the structure")

    # -- tags and scalars ------------------------------------------------------------------

    def _check_tag(self, event, tag: str) -> None:
        if tag not in _ALLOWED_TAGS:
            raise self._fail(event.start_mark, "yaml-tag",
                             f"tag {_tag_label(tag)} is not allowed; only the standard !!str, !!int, "
                             "!!float, !!bool, !!null, !!map and !!seq tags are accepted",
                             hint="remove the tag: llmspec never constructs objects from YAML tags")

    def _check_collection_tag(self, event, expected: str) -> None:
        tag = event.tag
        if tag is None:
            return
        self._check_tag(event, tag)
        if tag != expected:
            kind = "mapping" if expected == _MAP else "sequence"
            raise self._fail(event.start_mark, "yaml-tag", f"tag {_tag_label(tag)} cannot be applied to a {kind}")

    def _scalar(self, event):
        text = event.value
        tag = event.tag
        if tag is None:
            return _resolve_plain(text) if event.style is None else text
        self._check_tag(event, tag)
        if tag == _STR:
            return text
        if tag in (_MAP, _SEQ):
            raise self._fail(event.start_mark, "yaml-tag", f"tag {_tag_label(tag)} cannot be applied to a scalar")
        value = _resolve_plain(text)
        if tag == _FLOAT and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        wanted = {_INT: int, _FLOAT: float, _BOOL: bool, _NULL: type(None)}[tag]
        if type(value) is not wanted:
            raise self._fail(event.start_mark, "yaml-tag", f"{text!r} is not a valid {_tag_label(tag)}")
        return value


def _resolve_plain(text: str):
    """YAML 1.2 core schema resolution of an untagged plain scalar."""
    if text in _NULLS:
        return None
    if text in _TRUES:
        return True
    if text in _FALSES:
        return False
    first = text[0]
    if first not in "0123456789-+.":
        return text
    try:
        if _INT10.fullmatch(text):
            return int(text)
        if _INT8.fullmatch(text):
            return int(text[2:], 8)
        if _INT16.fullmatch(text):
            return int(text[2:], 16)
    except ValueError:  # more digits than Python converts; leave it to the schema to complain
        return text
    if _FLOAT_RE.fullmatch(text):
        return float(text)
    if _INF.fullmatch(text):
        return float("-inf") if text[0] == "-" else float("inf")
    if _NAN.fullmatch(text):
        return float("nan")
    return text


__all__ = ["ALIAS_BUDGET", "MAX_DEPTH", "Loaded", "Positions", "load_yaml_file", "load_yaml_text"]
