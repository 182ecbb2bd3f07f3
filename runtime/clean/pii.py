"""PII redaction: emails, phone numbers, payment cards, IP addresses and IBANs.

Two stages, so Python touches only the few values that may hold PII:

1. Polars (Rust regex) finds the distinct values holding a *candidate* and rewrites emails,
   which need no checksum, fully vectorised.
2. Python validates each candidate of those values only: cards pass a Luhn check and a card
   prefix (a 16-digit order number failing Luhn is not a card), IBANs the ISO 13616 mod-97
   check, IPs ``ipaddress`` parsing, and every kind needs word boundaries that Rust regex
   (no look-around) cannot express. This per-value loop is the unavoidable Python part.

The rewritten distinct values are mapped back onto the column with ``Expr.replace``.

Decisions:
- A dotted quad of valid octets is an IP unless written as a version: directly after
  ``v``/``V`` (``v1.2.3.4``), after the words version/ver/build/release/firmware, or part of a
  longer dotted number (``1.2.3.4.5``). Redacting a rare version string is preferred to leaking an IP.
- Cards: 13-19 digits, optionally grouped by single spaces or dashes, first digit 2-6 (the
  banking and payment industries of ISO/IEC 7812), Luhn-valid. A longer run of digit groups
  holding a valid card (``4111 1111 1111 1111 123``) is redacted whole: which neighbouring
  group belongs to the card cannot be known, and a partly redacted card still leaks digits.
- Phones: ``+`` or ``00`` and a country code, then more digits in groups (at least 8 digits for
  ``+``; ``00`` forms must be grouped, ``0049 30 1234567``), ``(area) ...`` forms and North American
  ``555-123-4567``; bare digit runs are not phones (too many order numbers look like them).
"""

from __future__ import annotations

import ipaddress
import re
from typing import TYPE_CHECKING, Any, Callable, Mapping

from llmspec.runtime.engine.columns import column, safe_name  # data names are never patterns

if TYPE_CHECKING:
    import polars as pl

    from llmspec.compiler.cleaning import CleaningStep

KINDS = ("email", "phone", "credit_card", "ip", "iban")
# Applied in this order: digits of cards and IBANs must not be mistaken for phone numbers.
PY_ORDER = ("iban", "credit_card", "ip", "phone")

EMAIL_RUST = r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9](?:[A-Za-z0-9\-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9\-]*[A-Za-z0-9])?)*\.[A-Za-z]{2,}"

# Loose Rust prefilters: every real match of the Python patterns contains one of these.
PREFILTER = {
    "email": r"@",
    "credit_card": r"(?:^|[^0-9])[2-6][0-9]{3}(?:[ \-]?[0-9]{4}[ \-]?[0-9]{4}|[ \-][0-9]{6})",
    "iban": r"[A-Za-z]{2}\d{2} ?[A-Za-z0-9]{4}",
    "ip": r"\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}|[0-9A-Fa-f]{0,4}:[0-9A-Fa-f]{0,4}:",
    "phone": r"\+\d|\b00[1-9]\d{0,2}[ .\-]|\(\d{2,5}\)|\d{3}[.\-]\d{3}[.\-]\d{4}",
}

_OCTET = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
PATTERNS = {
    "credit_card": re.compile(
        r"(?<![\w.,])(?<![0-9]-)(?:(?:[0-9]{4}[ \-]){2,}[0-9]{1,4}|[0-9]{4}[ \-][0-9]{6}[ \-][0-9]{4,5}|[0-9]{13,19})"
        r"(?![\w])"),
    "iban": re.compile(r"(?<![\w])[A-Za-z]{2}\d{2}(?: ?[A-Za-z0-9]){11,30}(?![\w])"),
    "ipv4": re.compile(rf"(?<![\w.]){_OCTET}(?:\.{_OCTET}){{3}}(?!\.?\d)(?![\w])"),
    "ipv6": re.compile(r"(?<![\w:.])[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7}(?:\.\d{1,3}){0,3}(?![\w:])"),
    "phone": re.compile(
        r"(?<![\w+])(?:\+|00(?=[1-9]))\d{1,3}(?:[ .\-]?(?:\(\d{1,4}\)|\d{1,4})){2,7}(?![\w])"
        r"|(?<![\w)])\(\d{2,5}\)[ .\-]?\d{2,4}(?:[ .\-]?\d{2,4}){1,3}(?![\w])"
        r"|(?<![\w.\-])\d{3}[.\-]\d{3}[.\-]\d{4}(?![\w]|[.\-]\d)"),
}
_VERSION_BEFORE = re.compile(r"(?i)(?:\b(?:version|ver|build|release|firmware|v)\.?\s*|[vV])$")


# ----------------------------------------------------------------------------- validators


def luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def is_card(text: str) -> bool:
    digits = re.sub(r"[ \-]", "", text)
    return 13 <= len(digits) <= 19 and digits.isdigit() and digits[0] in "23456" and luhn_ok(digits)


def iban_ok(text: str) -> bool:
    s = text.replace(" ", "").upper()
    if not (15 <= len(s) <= 34 and s[:2].isalpha() and s[2:4].isdigit() and s.isalnum() and s.isascii()):
        return False
    moved = s[4:] + s[:4]
    number = "".join(str(int(ch, 36)) for ch in moved)
    return int(number) % 97 == 1


def ip_ok(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _digits(text: str) -> int:
    return sum(ch.isdigit() for ch in text)


# ----------------------------------------------------------------------------- Python stage


def _best_span(text: str, ok: Callable[[str], bool], *, anchored: bool, max_len: int) -> tuple[int, int] | None:
    """The longest (then leftmost) run of whole space/dash-separated groups of ``text`` that is
    valid and at most ``max_len`` characters without separators; ``anchored`` runs start at the
    first group (an IBAN starts with its country code)."""
    seps = list(re.finditer(r"[ \-]", text))
    if not seps and anchored:  # one block: shorten character by character
        for end in range(min(len(text), max_len), 14, -1):
            if ok(text[:end]):
                return 0, end
        return None
    cuts = [0] + [m.end() for m in seps]
    ends = [m.start() for m in seps] + [len(text)]
    spans = []
    for i in range(1 if anchored else len(cuts)):
        size = 0
        for j in range(i, len(ends)):
            size += ends[j] - cuts[j]
            if size > max_len:
                break
            spans.append((cuts[i], ends[j]))
    spans.sort(key=lambda s: (-(s[1] - s[0]), s[0]))
    return next(((a, b) for a, b in spans if ok(text[a:b])), None)


def _scan(rx: re.Pattern, text: str, ok: Callable[[str], bool], tag: str, *, anchored: bool,
          whole_run: bool, max_len: int) -> str:
    """Replace the valid candidates of ``rx`` in ``text``. A candidate that is not valid as a whole
    may hold a valid run of groups: with ``whole_run`` the whole candidate goes (digit runs next to
    a card cannot be told apart from it), else only that run, and scanning resumes right after it
    in the full text (so an IBAN cut short by the candidate's length cap is found whole)."""
    out, pos = [], 0
    while (m := rx.search(text, pos)) is not None:
        cand = m.group(0)
        span = (0, len(cand)) if ok(cand) else _best_span(cand, ok, anchored=anchored, max_len=max_len)
        if span is None:
            nxt = m.end() if whole_run else m.start() + 1  # every sub-run was tried already
            out.append(text[pos:nxt])
            pos = nxt
            continue
        a, b = (0, len(cand)) if whole_run else span
        out.append(text[pos:m.start() + a])
        out.append(tag)
        pos = m.start() + b
    out.append(text[pos:])
    return "".join(out)


def _ipv4_repl(tag: str) -> Callable[[re.Match], str]:
    def repl(m: re.Match) -> str:
        if _VERSION_BEFORE.search(m.string, max(0, m.start() - 12), m.start()):
            return m.group(0)
        return tag
    return repl


def _ipv6_repl(tag: str) -> Callable[[re.Match], str]:
    def repl(m: re.Match) -> str:
        cand = m.group(0)
        core = cand.rstrip(".:")
        if any(c in "0123456789abcdefABCDEF" for c in core) and ":" in core and ip_ok(core):
            return tag + cand[len(core):]
        return cand
    return repl


def _phone_repl(tag: str) -> Callable[[re.Match], str]:
    def repl(m: re.Match) -> str:
        cand = m.group(0)
        n = _digits(cand)
        # No upper bound: a run of groups longer than E.164's 15 digits is two numbers written
        # back to back (a phone then an extension or a second phone); both go.
        if cand.startswith("+"):
            return tag if n >= 8 else cand
        if cand.startswith("00"):  # 00 + country code; grouped, or it is an order number
            return tag if n >= 10 and any(c in " .-(" for c in cand) else cand
        return tag if n >= 7 else cand
    return repl


def _iban(text: str, tag: str) -> str:
    return _scan(PATTERNS["iban"], text, iban_ok, tag, anchored=True, whole_run=False, max_len=34)


def _cards(text: str, tag: str) -> str:
    return _scan(PATTERNS["credit_card"], text, is_card, tag, anchored=False, whole_run=True, max_len=19)


def _ips(text: str, tag: str) -> str:
    # IPv6 first: an IPv4-mapped address (::ffff:1.2.3.4) is one address, not two
    text = PATTERNS["ipv6"].sub(_ipv6_repl(tag), text)
    return PATTERNS["ipv4"].sub(_ipv4_repl(tag), text)


def _phones(text: str, tag: str) -> str:
    return PATTERNS["phone"].sub(_phone_repl(tag), text)


PY_REDACT = {"iban": _iban, "credit_card": _cards, "ip": _ips, "phone": _phones}


def redact_text(text: str, placeholders: Mapping[str, str]) -> str:
    """Redact one string with the Python patterns only (emails are done in Polars first)."""
    for kind in PY_ORDER:
        if kind in placeholders:
            text = PY_REDACT[kind](text, placeholders[kind])
    return text


def redact_all(text: str, placeholders: Mapping[str, str]) -> str:
    """Both stages on one string (the reference the bench's pandas script and the tests use)."""
    if "email" in placeholders:
        text = re.sub(EMAIL_RUST, placeholders["email"].replace("\\", "\\\\"), text)
    return redact_text(text, placeholders)


# ----------------------------------------------------------------------------- Polars stage


def prefilter(kinds) -> str:
    return "|".join(f"(?:{PREFILTER[k]})" for k in kinds)


def redact_values(values: "pl.Series", placeholders: Mapping[str, str]) -> "pl.Series":
    """Distinct candidate values -> their redacted form (same order)."""
    import polars as pl

    out = values.clone()  # scatter below writes in place
    if "email" in placeholders:
        out = out.str.replace_all(EMAIL_RUST, placeholders["email"], literal=False)
    for kind in PY_ORDER:  # same order as redact_text, each kind on its own candidates only
        if kind not in placeholders:
            continue
        mask = out.str.contains(PREFILTER[kind]).fill_null(False)
        if mask.any():
            idx = mask.arg_true()
            # the unavoidable Python loop: checksum/boundary validation of candidate values only
            fn, tag = PY_REDACT[kind], placeholders[kind]
            out = out.scatter(idx, pl.Series([fn(v, tag) for v in out.gather(idx).to_list()], dtype=pl.String))
    return out


def _mapping(flat: "pl.Series", placeholders: Mapping[str, str]) -> tuple["pl.Series", "pl.Series"]:
    import polars as pl

    cands = flat.drop_nulls().unique()
    cands = cands.filter(cands.str.contains(prefilter(placeholders)))
    if cands.len() == 0:
        return cands, cands
    new = redact_values(cands, placeholders)
    changed = cands != new
    return cands.filter(changed), new.filter(changed).cast(pl.String)


def redact_frame(df: "pl.DataFrame", step: "CleaningStep") -> tuple["pl.DataFrame", int]:
    """The step's text columns redacted; returns the frame and how many rows changed."""
    import polars as pl

    from llmspec.runtime.clean.kernels import text_columns

    placeholders = step.args["placeholders"]
    exprs, changed = [], []
    for c, cat in text_columns(step, df.schema):
        if cat == "turns":
            flat = df.get_column(c).alias("value").list.eval(pl.element().struct.field("content")).explode()
        else:
            flat = df.get_column(c).alias("value")  # a Series' methods select it by its name: never "*"
        old, new = _mapping(flat, placeholders)
        if old.len() == 0:
            continue
        if cat == "turns":
            expr = column(c).list.eval(pl.element().struct.with_fields(
                pl.field("content").replace(old, new)))
        else:
            expr = column(c).replace(old, new)
        exprs.append(expr.alias(f"__new__{c}"))
        changed.append(c)
    if not exprs:
        return df, 0
    tmp = df.with_columns(exprs)
    n = tmp.select(pl.any_horizontal([column(c).ne_missing(column(f"__new__{c}")) for c in changed]).sum()).item()
    out = tmp.select([column(f"__new__{c}").alias(c) if c in changed else column(c) for c in df.columns])
    return out, int(n)


def explain_exprs(step: "CleaningStep", schema: Mapping[str, Any]) -> list["pl.Expr"]:
    """What redact_frame runs, as expressions for LazyFrame.explain()."""
    import polars as pl

    from llmspec.runtime.clean.kernels import on_text, text_columns

    placeholders = step.args["placeholders"]
    py_kinds = [k for k in PY_ORDER if k in placeholders]

    def stage(e: pl.Expr) -> pl.Expr:
        cand = e.str.contains(prefilter(placeholders))
        new = e
        if "email" in placeholders:
            new = new.str.replace_all(EMAIL_RUST, placeholders["email"])
        if py_kinds:
            new = pl.when(new.str.contains(prefilter(py_kinds))).then(
                new.map_batches(safe_name(validate_candidates_in_python), return_dtype=pl.String)).otherwise(new)
        return pl.when(cand).then(new).otherwise(e)

    return [on_text(c, cat, stage).alias(c) for c, cat in text_columns(step, schema)]


def validate_candidates_in_python(s: "pl.Series") -> "pl.Series":  # named for explain() output only
    return s
