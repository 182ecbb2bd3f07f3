"""Every form a connection string's secrets can take, so that no message ever shows one.

A password reaches a database driver in a URL's user info (``postgresql://u:S3cret@h/db``), in
its query (``?password=S3cret``, ``&sslpassword=...``), or in a key=value DSN
(``host=h password='S3 cret'``), raw or percent-encoded, valid or not (``S3cret%zz``). A driver
may echo any of these forms, decoded or not, so each is collected in every spelling and
replaced wherever it appears in a message.
"""

from __future__ import annotations

import re
from urllib.parse import quote, unquote, unquote_plus

_SECRET_KEYS = frozenset({"password", "passwd", "pass", "pwd", "sslpassword", "secret", "token", "api_key",
                          "apikey", "access_token", "auth", "authorization", "sslkey", "passfile"})
# key = 'quoted value' | bare-value, as libpq reads a DSN
_DSN_PAIR = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\s*=\s*('(?:[^'\\]|\\.)*'?|[^\s']*)")
_USERINFO = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://([^/?#]*)@")


def _spellings(value: str) -> set[str]:
    """The value as written, decoded (percent, plus), re-encoded and escaped."""
    out = {value}
    for decoded in (unquote(value), unquote_plus(value)):
        out.add(decoded)
    for v in list(out):
        out |= {quote(v, safe=""), quote(v), v.replace("\\", "\\\\"), repr(v)[1:-1]}
    return {s for s in out if s}


def secrets_of(url: str) -> list[str]:
    """Every string to hide in messages about ``url``, longest first (so a whole secret is
    replaced before a part of it)."""
    found = {url}
    m = _USERINFO.match(url)
    if m and ":" in m.group(1):
        found |= _spellings(m.group(1).split(":", 1)[1])
    query = url.split("?", 1)[1] if "?" in url else ""
    for pair in re.split(r"[&;]", query.split("#", 1)[0]):
        key, sep, value = pair.partition("=")
        if sep and unquote(key).strip().lower() in _SECRET_KEYS:
            found |= _spellings(value)
    if "://" not in url:  # a key=value DSN
        for key, raw in _DSN_PAIR.findall(url):
            if key.lower() in _SECRET_KEYS and raw:
                found.add(raw)
                inner = raw[1:-1] if raw.startswith("'") and raw.endswith("'") and len(raw) > 1 else raw.strip("'")
                found |= _spellings(re.sub(r"\\(.)", r"\1", inner)) | _spellings(inner)
    return sorted((s for s in found if s), key=len, reverse=True)


def scrub(text: str, secrets: list[str]) -> str:
    for secret in secrets:
        text = text.replace(secret, "***")
    return text


__all__ = ["scrub", "secrets_of"]
