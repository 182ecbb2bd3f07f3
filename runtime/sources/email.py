"""Email: ``mbox`` files or ``eml`` files (one message each), read with the stdlib ``email``.

Columns (``EMAIL_COLUMNS``), one row per message:
``message_id``, ``in_reply_to`` (ids as written, with angle brackets), ``thread_id`` (the
Message-ID of the thread's root), ``sender`` (the From address), ``to`` (To addresses,
comma-separated), ``subject``, ``date`` (UTC; null when missing or unparseable), ``body``
(the author's own plain text), ``quoted`` (quoted replies and forwarded text), ``signature``
(see ``_mailtext.py``; both empty strings when absent). The body is the ``text/plain``
part, or the ``text/html`` part converted to text when there is no plain one.

Threads: every message is joined (union-find) with all ids in its References and
In-Reply-To, so a reply carrying only In-Reply-To still joins its thread, also across
eml files. The thread id is the first References id of the earliest message that has
References (References list the ancestry oldest first), else the root reached by following
In-Reply-To up from the earliest message; the root need not be in the data.

Origins: ``support.mbox#<message-id>`` (``support.mbox:msg N`` without a Message-ID) and
the file path for eml. Units: messages. A message with no header at all, or whose body
cannot be decoded in its declared charset or UTF-8, is ``corrupt`` with its bytes.

With ``pairing`` one row per thread (``PAIRED_EMAIL_COLUMNS``): ``customer`` (first sender
not matching ``pairing.agent``), ``agent`` (who sent the first reply to the customer),
``query`` (the customer's first body), ``reply`` (that agent reply's body), ``turns``
(every message of the thread in date order as ``{role, content}``, role ``user`` or
``assistant`` by sender, consecutive messages of one role merged), ``message_id`` (of the
query) and ``subject`` (of the query, without Re:/Fwd: prefixes). Units are then threads
(plus corrupt messages); a thread without an agent reply to a customer is rejected with
rule ``unpaired``, counted and kept with the other rejects.
"""

from __future__ import annotations

import datetime as _dt
import email
import email.policy
import email.utils
import re
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path

from ._common import Part, concat_rejects, contract_rejects, data_error, read_bytes, rejects, strip_bom
from ._mailtext import html_to_text, split_reply

_IDS = re.compile(r"<[^<>\s]+>")
_FROM_LINE = re.compile(rb"^From [^\r\n]*\r?\n", re.M)
_ESCAPED_FROM = re.compile(rb"^>(>*From )", re.M)
_SUBJECT_PREFIX = re.compile(r"^\s*((re|fwd?|aw|wg|sv|vs|tr|antw)\s*(\[\d+\])?\s*:\s*)+", re.I)


@dataclass
class Msg:
    origin: str
    order: int
    message_id: str | None
    in_reply_to: str | None
    refs: list[str]
    sender: str | None
    to: str
    subject: str | None
    date: _dt.datetime | None
    body: str
    quoted: str
    signature: str
    thread_id: str | None = None


class Undecodable(Exception):
    pass


def split_mbox(data: bytes) -> list[bytes]:
    """Messages of an mbox, each with its ``From `` separator line."""
    starts = [m.start() for m in _FROM_LINE.finditer(data)]
    if not starts or data[:starts[0]].strip():
        starts = [0] + starts  # text before the first separator is a (probably broken) message
    ends = starts[1:] + [len(data)]
    return [data[a:b] for a, b in zip(starts, ends) if data[a:b].strip()]


def _ids(value) -> list[str]:
    return _IDS.findall(str(value)) if value is not None else []


def _header(msg, name: str) -> str | None:
    try:
        value = msg[name]
    except Exception:  # noqa: BLE001 - malformed headers make the stdlib parser raise odd errors
        value = next((v for k, v in msg.raw_items() if k.lower() == name.lower()), None)
    return None if value is None else str(value)


def _addresses(msg, name: str) -> list[str]:
    value = _header(msg, name)
    if not value:
        return []
    return [addr for _, addr in email.utils.getaddresses([value]) if addr]


def _date(value: str | None) -> _dt.datetime | None:
    if not value:
        return None
    try:
        d = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if d is None:
        return None
    return (d.astimezone(_dt.timezone.utc) if d.tzinfo else d.replace(tzinfo=_dt.timezone.utc))


def _text_of(part) -> str:
    payload = part.get_payload(decode=True)
    if payload is None:
        payload = b""
    charset = part.get_content_charset() or "utf-8"
    for enc in dict.fromkeys([charset, "utf-8"]):
        try:
            return payload.decode(enc)
        except (LookupError, UnicodeDecodeError):
            continue
    raise Undecodable(f"body is not valid {charset}")


def _body_text(msg) -> str:
    part = msg.get_body(preferencelist=("plain", "html"))
    if part is None:
        return ""
    text = _text_of(part)
    return html_to_text(text) if part.get_content_subtype() == "html" else text


def parse_message(raw: bytes, origin_base: str, index: int, *, separator: bool) -> Msg:
    body_bytes = raw
    if separator:
        m = _FROM_LINE.match(raw)
        if m:
            body_bytes = _ESCAPED_FROM.sub(rb"\1", raw[m.end():])
    msg = email.message_from_bytes(body_bytes, policy=email.policy.default)
    if not msg.keys():
        raise Undecodable("no email headers")
    if not any(k.lower() in ("from", "message-id", "subject", "date", "to") for k in msg.keys()):
        raise Undecodable("no From, To, Subject, Date or Message-ID header")
    mid = next(iter(_ids(_header(msg, "Message-ID"))), None)
    irt = next(iter(_ids(_header(msg, "In-Reply-To"))), None)
    refs = _ids(_header(msg, "References"))
    senders = _addresses(msg, "From")
    text = _body_text(msg)
    body, quoted, signature = split_reply(text)
    subject = _header(msg, "Subject")
    if mid:
        origin = f"{origin_base}#{mid}" if separator else origin_base
    else:
        origin = f"{origin_base}:msg {index}" if separator else origin_base
    return Msg(origin=origin, order=index, message_id=mid, in_reply_to=irt, refs=refs,
               sender=senders[0] if senders else None, to=", ".join(_addresses(msg, "To")),
               subject=subject.strip() if subject else subject, date=_date(_header(msg, "Date")),
               body=body, quoted=quoted, signature=signature)


# ----------------------------------------------------------------------------- threads


def assign_threads(msgs: list[Msg]) -> None:
    uf: dict[str, str] = {}

    def find(x: str) -> str:
        uf.setdefault(x, x)
        while uf[x] != x:
            uf[x] = uf[uf[x]]
            x = uf[x]
        return x

    parent_of: dict[str, str] = {}
    keys = []
    for m in msgs:
        key = m.message_id or f"\0{m.origin}\0{m.order}"
        keys.append(key)
        find(key)
        parent = m.in_reply_to or (m.refs[-1] if m.refs else None)
        if parent and m.message_id and parent != m.message_id:
            parent_of.setdefault(m.message_id, parent)
        for other in m.refs + ([m.in_reply_to] if m.in_reply_to else []):
            ra, rb = find(key), find(other)
            if ra != rb:
                uf[rb] = ra
    # The root: References list the ancestry oldest first, so the first id of the earliest
    # message that has References; without any, follow In-Reply-To up from the earliest message.
    earliest: dict[str, Msg] = {}
    earliest_refs: dict[str, Msg] = {}
    for key, m in zip(keys, msgs):
        comp = find(key)
        if comp not in earliest or _sort_key(m) < _sort_key(earliest[comp]):
            earliest[comp] = m
        if m.refs and (comp not in earliest_refs or _sort_key(m) < _sort_key(earliest_refs[comp])):
            earliest_refs[comp] = m
    root_of: dict[str, str] = {}
    for comp, m in earliest.items():
        if comp in earliest_refs:
            root = earliest_refs[comp].refs[0]
        elif m.in_reply_to:
            root, seen = m.in_reply_to, {m.in_reply_to}
            while root in parent_of and parent_of[root] not in seen:
                root = parent_of[root]
                seen.add(root)
        else:
            root = m.message_id or m.origin
        root_of[comp] = root
    for key, m in zip(keys, msgs):
        m.thread_id = root_of[find(key)]


def _sort_key(m: Msg):
    # Undated messages sort after dated ones, then by position in the data.
    return (m.date is None, m.date or _dt.datetime.min.replace(tzinfo=_dt.timezone.utc), m.order)


# ----------------------------------------------------------------------------- frames


def _message_frame(msgs: list[Msg]):
    import polars as pl

    return pl.DataFrame(
        {
            "message_id": [m.message_id for m in msgs],
            "thread_id": [m.thread_id for m in msgs],
            "in_reply_to": [m.in_reply_to for m in msgs],
            "sender": [m.sender for m in msgs],
            "to": [m.to for m in msgs],
            "subject": [m.subject for m in msgs],
            "date": pl.Series([m.date for m in msgs], dtype=pl.Datetime("us", "UTC")),
            "body": [m.body for m in msgs],
            "quoted": [m.quoted for m in msgs],
            "signature": [m.signature for m in msgs],
            "_origin": [m.origin for m in msgs],
        },
        schema={"message_id": pl.String, "thread_id": pl.String, "in_reply_to": pl.String, "sender": pl.String,
                "to": pl.String, "subject": pl.String, "date": pl.Datetime("us", "UTC"), "body": pl.String,
                "quoted": pl.String, "signature": pl.String, "_origin": pl.String},
    )


def is_agent(address: str | None, patterns: list[str]) -> bool:
    if not address:
        return False
    addr = address.lower()
    return any(fnmatchcase(addr, p.lower()) for p in patterns)


def _pairs(msgs: list[Msg], patterns: list[str]):
    import polars as pl

    threads: dict[str, list[Msg]] = {}
    for m in msgs:
        threads.setdefault(m.thread_id, []).append(m)
    rows = []
    unpaired: list[tuple[str, str]] = []
    for tid, group in threads.items():
        group.sort(key=_sort_key)
        roles = ["assistant" if is_agent(m.sender, patterns) else "user" for m in group]
        first_user = next((i for i, r in enumerate(roles) if r == "user"), None)
        reply_at = None if first_user is None else next(
            (i for i in range(first_user + 1, len(group)) if roles[i] == "assistant"), None)
        if reply_at is None:
            why = "no customer message" if first_user is None else "no agent reply"
            unpaired.append((f"thread of {len(group)} message{'s' * (len(group) != 1)} has {why}",
                             group[0].origin))
            continue
        query, reply = group[first_user], group[reply_at]
        turns: list[dict] = []
        for m, role in zip(group, roles):
            if not m.body:
                continue
            if turns and turns[-1]["role"] == role:
                turns[-1]["content"] += "\n\n" + m.body
            else:
                turns.append({"role": role, "content": m.body})
        subject = _SUBJECT_PREFIX.sub("", query.subject or "").strip() or None
        rows.append({"thread_id": tid, "message_id": query.message_id, "subject": subject,
                     "customer": query.sender, "agent": reply.sender, "query": query.body, "reply": reply.body,
                     "turns": turns, "_origin": query.origin})
    schema = {"thread_id": pl.String, "message_id": pl.String, "subject": pl.String, "customer": pl.String,
              "agent": pl.String, "query": pl.String, "reply": pl.String,
              "turns": pl.List(pl.Struct({"role": pl.String, "content": pl.String})), "_origin": pl.String}
    frame = pl.DataFrame(rows, schema=schema) if rows else pl.DataFrame(schema=schema)
    bad = rejects("unpaired", [d for d, _ in unpaired], [o for _, o in unpaired])
    return frame, bad


def read_files(files: list[tuple[Path, str]], spec, contract) -> Part:
    from .contract import add_absent, check_frame, require_columns

    msgs: list[Msg] = []
    bad_why: list[str] = []
    bad_origin: list[str] = []
    bad_raw: list[bytes] = []
    order = 0
    for path, shown in files:
        data = strip_bom(read_bytes(path, shown))
        units = split_mbox(data) if spec.format == "mbox" else [data]
        failed_before = len(bad_why)
        for n, raw in enumerate(units, start=1):
            order += 1
            try:
                msgs.append(parse_message(raw, shown, n, separator=spec.format == "mbox"))
                msgs[-1].order = order
            except Undecodable as exc:
                bad_why.append(f"undecodable email: {exc}")
                bad_origin.append(f"{shown}:msg {n}" if spec.format == "mbox" else shown)
                bad_raw.append(raw)
            except Exception as exc:  # noqa: BLE001 - the stdlib parser has crash bugs on malformed mail
                bad_why.append(f"undecodable email: {type(exc).__name__}: {str(exc)[:80]}")
                bad_origin.append(f"{shown}:msg {n}" if spec.format == "mbox" else shown)
                bad_raw.append(raw)
        if spec.format == "mbox" and units and len(bad_why) - failed_before == len(units):
            # As JSONL and CSV do: a file in which not one message reads is not an mbox at all.
            raise data_error(f"{shown}: not one of its {len(units)} message{'s' * (len(units) != 1)} could be read "
                             f"({bad_origin[failed_before]}: {bad_why[failed_before]}); is it really mbox?", shown,
                             code="wrong-format")
    assign_threads(msgs)
    corrupt = rejects("corrupt", bad_why, bad_origin, bad_raw)
    if spec.pairing is not None:
        frame, unpaired = _pairs(msgs, spec.pairing.agent)
        bad = concat_rejects([corrupt, unpaired])
        units = frame.height + unpaired.height + corrupt.height
    else:
        frame, bad = _message_frame(msgs), corrupt
        units = len(msgs) + corrupt.height
    if not contract:
        return Part(frame, bad, units)
    shown = files[0][1] if files else "email"
    require_columns(frame.columns, contract, shown)
    frame = add_absent(frame, contract)
    good, wrong = check_frame(frame, contract, parse_strings=False)
    return Part(good, concat_rejects([bad, contract_rejects(wrong)]), units)
