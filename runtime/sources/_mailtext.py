"""The text of one email: its body with quoted replies and the signature split off.

Recognised, in the order they end the author's own text:

- a reply header: ``On <date>, <name> wrote:`` (also wrapped over two lines, and the usual
  German/French/Spanish/Dutch forms), Outlook's ``-----Original Message-----``, an Outlook
  header block (``From: ...`` followed by ``Sent:``/``Date:`` within a few lines, possibly
  after a line of underscores), and ``---------- Forwarded message ----------``:
  everything from there on is ``quoted``;
- lines starting with ``>`` (inline or bottom posting): ``quoted``, the rest stays body;
- the ``-- `` signature delimiter (also ``--`` with its space lost), and mobile footers
  (``Sent from my iPhone``, ``Get Outlook for Android``, ...): the rest of the author's text
  is ``signature``.

Sign-offs such as "Best regards, Ann" are part of the message and stay in the body.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

_ON_WROTE = re.compile(
    r"^\s*(On\b.{0,300}\bwrote|Am\b.{0,300}\bschrieb.{0,80}|Le\b.{0,300}\ba écrit|El\b.{0,300}\bescribió"
    r"|Op\b.{0,300}\bschreef.{0,80})\s*:\s*$", re.I)
_ON_START = re.compile(r"^\s*(On|Am|Le|El|Op)\s", re.I)
_ORIGINAL = re.compile(r"^\s*-{2,}\s*(Original Message|Ursprüngliche Nachricht|Message d'origine|Mensaje original)"
                       r"\s*-{2,}\s*$", re.I)
_FORWARDED = re.compile(r"^\s*-{2,}\s*(Forwarded message|Begin forwarded message)\b.*$", re.I)
_UNDERSCORES = re.compile(r"^\s*_{10,}\s*$")
_HDR_FROM = re.compile(r"^\s*\*?(From|Von|De)\s*:\*?\s", re.I)
_HDR_NEXT = re.compile(r"^\s*\*?(Sent|Date|Gesendet|Datum|Envoyé|Enviado|To|Subject)\s*:\*?", re.I)
_SIG_DELIM = re.compile(r"^--\s?$")
_MOBILE = re.compile(
    r"^\s*(Sent from my \w+.*|Sent from (Mail|Outlook|Yahoo Mail|Gmail)\b.*|Get Outlook for \w+.*"
    r"|Sent via .{1,40}|Von meinem \w+ gesendet.*|Envoyé de mon \w+.*|Enviado desde mi \w+.*)\s*$", re.I)
_QUOTE = re.compile(r"^\s*>")
_QUOTE_MARKS = re.compile(r"^(\s*>\s?)+")


def _reply_header_at(lines: list[str], i: int) -> bool:
    line = lines[i]
    if _ON_WROTE.match(line) or _ORIGINAL.match(line) or _FORWARDED.match(line):
        return True
    # "On Mon, 1 Jan 2024 at 10:00, Ann Example <" / "ann@example.com> wrote:" (wrapped)
    if _ON_START.match(line) and i + 1 < len(lines) and _ON_WROTE.match(line.rstrip() + " " + lines[i + 1].strip()):
        return True
    if _UNDERSCORES.match(line) and i + 1 < len(lines) and _HDR_FROM.match(lines[i + 1]):
        return True
    if _HDR_FROM.match(line):
        return any(_HDR_NEXT.match(nxt) for nxt in lines[i + 1:i + 5])
    return False


def _bottom_post_start(lines: list[str], cut: int) -> int:
    """Where own text resumes after a `>`-quoted block that follows a reply header, else the end."""
    if cut >= len(lines) or not (_ON_WROTE.match(lines[cut]) or _ON_START.match(lines[cut])):
        return len(lines)
    i = cut + 1
    if i < len(lines) and not _QUOTE.match(lines[i]) and _ON_WROTE.match(lines[cut].rstrip() + " " + lines[i].strip()):
        i += 1  # the header's wrapped second line
    seen_quote = False
    while i < len(lines) and (_QUOTE.match(lines[i]) or not lines[i].strip()):
        seen_quote = seen_quote or bool(_QUOTE.match(lines[i]))
        i += 1
    return i if seen_quote and i < len(lines) else len(lines)


def split_reply(text: str) -> tuple[str, str, str]:
    """(body, quoted, signature) of a plain-text message."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    cut = next((i for i in range(len(lines)) if _reply_header_at(lines, i)), len(lines))
    end = _bottom_post_start(lines, cut)
    # Bottom-posting: "On ... wrote:" and its `>` block come first, the reply follows it.
    own = lines[:cut] + lines[end:]
    quoted = [_QUOTE_MARKS.sub("", ln) for ln in lines[cut:end]]
    body: list[str] = []
    inline_quotes: list[str] = []
    for ln in own:
        if _QUOTE.match(ln):
            inline_quotes.append(_QUOTE_MARKS.sub("", ln))
        else:
            body.append(ln)
    sig_at = next((i for i, ln in enumerate(body) if _SIG_DELIM.match(ln)), None)
    signature: list[str] = []
    if sig_at is not None:
        body, signature = body[:sig_at], body[sig_at + 1:]
    else:
        mob = next((i for i, ln in enumerate(body) if _MOBILE.match(ln)), None)
        if mob is not None:
            body, signature = body[:mob], body[mob:]
    return ("\n".join(body).strip(), "\n".join(inline_quotes + quoted).strip(), "\n".join(signature).strip())


class _HtmlText(HTMLParser):
    _BLOCK = {"p", "div", "br", "tr", "li", "ul", "ol", "table", "h1", "h2", "h3", "h4", "h5", "h6",
              "blockquote", "pre", "hr", "section", "article", "header", "footer"}
    _SKIP = {"script", "style", "head", "title"}

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self.skip = 0
        self.quote = 0

    def handle_starttag(self, tag, attrs):
        if tag in self._SKIP:
            self.skip += 1
        elif tag == "blockquote":
            self.quote += 1
            self.out.append("\n")
        elif tag == "li":
            self.out.append("\n- ")
        elif tag in self._BLOCK:
            self.out.append("\n")

    def handle_endtag(self, tag):
        if tag in self._SKIP:
            self.skip = max(0, self.skip - 1)
        elif tag == "blockquote":
            self.quote = max(0, self.quote - 1)
            self.out.append("\n")
        elif tag in self._BLOCK and tag != "li":
            self.out.append("\n")

    def handle_data(self, data):
        if self.skip:
            return
        text = re.sub(r"\s+", " ", data)
        if self.quote:
            text = text.replace("\n", "\n> ")
            if not self.out or self.out[-1].endswith("\n"):
                text = "> " * self.quote + text.lstrip()
        self.out.append(text)


def html_to_text(html: str) -> str:
    """Readable text from an HTML body: block elements become line breaks, blockquotes
    become ``>`` lines (so quote splitting works on them), scripts and styles go."""
    parser = _HtmlText()
    parser.feed(html)
    parser.close()
    lines = [ln.strip() for ln in "".join(parser.out).split("\n")]
    text = "\n".join(lines)
    return re.sub(r"\n{3,}", "\n\n", text).strip()
