"""Email sources: body/quote/signature splitting, HTML bodies, threads and pairing."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from llmspec.runtime.sources import read_source
from llmspec.runtime.sources._mailtext import html_to_text, split_reply
from llmspec.spec.models import EMAIL_COLUMNS, PAIRED_EMAIL_COLUMNS, EmlSource, MboxSource

# ----------------------------------------------------------------------------- reply splitting


def test_gmail_style_quote_and_dash_signature():
    text = (
        "Hi Ann,\n\nYour refund was issued today.\n\nBest regards,\nBob\n-- \nBob Agent\nAcme Support\n\n"
        "On Mon, 1 Jan 2024 at 10:00, Ann Customer <ann@example.com> wrote:\n> Where is my refund?\n> Ann\n"
    )
    body, quoted, signature = split_reply(text)
    assert body == "Hi Ann,\n\nYour refund was issued today.\n\nBest regards,\nBob"
    assert signature == "Bob Agent\nAcme Support"
    assert quoted.startswith("On Mon, 1 Jan 2024 at 10:00, Ann Customer <ann@example.com> wrote:")
    assert "Where is my refund?" in quoted and ">" not in quoted.split("\n", 1)[1]


def test_wrapped_attribution_line():
    text = "Thanks!\n\nOn Tue, Feb 6, 2024 at 9:15 AM Ann Customer <\nann@example.com> wrote:\n> old text\n"
    body, quoted, _ = split_reply(text)
    assert body == "Thanks!"
    assert "old text" in quoted and "old text" not in body


def test_outlook_original_message_block():
    text = ("Please send the invoice again.\n\n-----Original Message-----\nFrom: Support <help@acme.example>\n"
            "Sent: Monday, January 1, 2024 10:00 AM\nTo: Ann\nSubject: Invoice\n\nHere is your invoice.\n")
    body, quoted, signature = split_reply(text)
    assert body == "Please send the invoice again."
    assert quoted.startswith("-----Original Message-----") and "Here is your invoice." in quoted
    assert signature == ""


def test_outlook_header_block_without_separator_line():
    text = ("Got it, thanks.\n\n________________________________\nFrom: Support <help@acme.example>\n"
            "Sent: Monday, January 1, 2024 10:00 AM\nTo: Ann\n\nOld reply.\n")
    body, quoted, _ = split_reply(text)
    assert body == "Got it, thanks."
    assert "Old reply." in quoted


def test_mobile_footer_is_signature():
    body, quoted, signature = split_reply("My order never arrived.\n\nSent from my iPhone\n")
    assert (body, quoted, signature) == ("My order never arrived.", "", "Sent from my iPhone")


def test_inline_quotes_leave_the_answers_in_the_body():
    text = "> Can I return it?\nYes, within 30 days.\n> And shipping?\nFree.\n"
    body, quoted, _ = split_reply(text)
    assert body == "Yes, within 30 days.\nFree."
    assert quoted == "Can I return it?\nAnd shipping?"


def test_a_from_line_in_prose_is_not_a_header():
    body, quoted, _ = split_reply("From: my point of view the product is great.\nThanks\n")
    assert body.startswith("From: my point of view") and quoted == ""


def test_html_to_text_blocks_entities_scripts_and_quotes():
    html = ("<html><head><style>p{color:red}</style></head><body><p>Hello&nbsp;Ann &amp; Co,</p>"
            "<div>Line two<br>Line three</div><ul><li>one</li><li>two</li></ul>"
            "<script>alert(1)</script><blockquote>old message</blockquote></body></html>")
    text = html_to_text(html)
    assert "Hello Ann & Co," in text  # entities decoded, the no-break space folded
    assert "Line two\nLine three" in text
    assert "- one\n- two" in text
    assert "alert" not in text and "color" not in text
    assert "> old message" in text


# ----------------------------------------------------------------------------- mbox / eml files


def _mail(mid, sender, subject, body, *, date, in_reply_to=None, references=None, to="help@acme.example",
          ctype="text/plain; charset=utf-8", cte="8bit", extra=""):
    headers = [f"From: {sender}", f"To: {to}", f"Subject: {subject}", f"Date: {date}"]
    if mid:
        headers.append(f"Message-ID: {mid}")
    if in_reply_to:
        headers.append(f"In-Reply-To: {in_reply_to}")
    if references:
        headers.append(f"References: {references}")
    headers += ["MIME-Version: 1.0", f"Content-Type: {ctype}", f"Content-Transfer-Encoding: {cte}"]
    return "\n".join(headers) + extra + "\n\n" + body


Q1 = _mail("<q1@example.com>", "Ann Customer <ann@example.com>", "Refund for order 123",
           "Hello,\nwhere is my refund for order 123?\n\nSent from my iPhone\n",
           date="Mon, 01 Jan 2024 10:00:00 +0000")
A1 = _mail("<a1@acme.example>", "Bob <bob@acme.example>", "Re: Refund for order 123",
           "Hi Ann,\nthe refund was issued today.\n-- \nBob, Acme Support\n\n"
           "On Mon, 1 Jan 2024 at 10:00, Ann Customer <ann@example.com> wrote:\n> Hello,\n"
           "> where is my refund for order 123?\n",
           date="Mon, 01 Jan 2024 11:00:00 +0000", in_reply_to="<q1@example.com>",
           references="<q1@example.com>")
# A reply that only carries In-Reply-To (no References) still joins the thread.
Q2 = _mail("<q2@example.com>", "ann@example.com", "Re: Refund for order 123", "Thanks! One more question: VAT?\n",
           date="Mon, 01 Jan 2024 12:00:00 +0000", in_reply_to="<a1@acme.example>")
A2 = _mail("<a2@acme.example>", "Carol <CAROL@ACME.EXAMPLE>", "Re: Refund for order 123", "VAT is included.\n",
           date="Mon, 01 Jan 2024 13:00:00 +0000", in_reply_to="<q2@example.com>",
           references="<q1@example.com> <a1@acme.example> <q2@example.com>")
# A thread nobody answered.
LONE = _mail("<lone@example.com>", "Dan <dan@example.com>", "Hello?", "Is anyone there?\n",
             date="Tue, 02 Jan 2024 09:00:00 +0000")
# HTML only, quoted-printable.
HTML = _mail("<h1@example.com>", "eve@example.com", "Broken item",
             "<html><body><p>My item arrived broken=2E</p><p>Photo attached=2E</p></body></html>\n",
             date="Wed, 03 Jan 2024 09:00:00 +0000", ctype="text/html; charset=utf-8", cte="quoted-printable")
HTML_REPLY = _mail("<h2@acme.example>", "bob@acme.example", "Re: Broken item", "Sorry! A replacement is on its way.\n",
                   date="Wed, 03 Jan 2024 10:00:00 +0000", in_reply_to="<h1@example.com>")
# Declared charset is wrong and the bytes are not UTF-8 either: undecodable.
BROKEN = ("From: x@example.com\nSubject: broken\nMessage-ID: <broken@example.com>\n"
          "Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: base64\n\n"
          "/w4A/w==\n")


def _mbox(*messages: str) -> bytes:
    out = []
    for m in messages:
        out.append("From MAILER-DAEMON Mon Jan  1 00:00:00 2024\n" + m.rstrip("\n") + "\n\n")
    return "".join(out).encode("utf-8")


@pytest.fixture
def mbox_dir(tmp_path: Path) -> Path:
    (tmp_path / "support.mbox").write_bytes(_mbox(Q1, A1, Q2, A2, LONE, HTML, HTML_REPLY, BROKEN))
    return tmp_path


def test_mbox_messages_columns_threads_and_origins(mbox_dir: Path):
    batch = read_source("mail", MboxSource(format="mbox", path="support.mbox"), mbox_dir)
    rows = batch.rows
    assert rows.columns == [*EMAIL_COLUMNS, "_origin"]
    assert batch.rows_in == 8 and rows.height == 7 and batch.rejected.height == 1
    by_id = {r["message_id"]: r for r in rows.iter_rows(named=True)}
    assert set(by_id) == {"<q1@example.com>", "<a1@acme.example>", "<q2@example.com>", "<a2@acme.example>",
                          "<lone@example.com>", "<h1@example.com>", "<h2@acme.example>"}
    thread = {m: by_id[m]["thread_id"] for m in by_id}
    assert {thread[m] for m in ("<q1@example.com>", "<a1@acme.example>", "<q2@example.com>",
                                "<a2@acme.example>")} == {"<q1@example.com>"}
    assert thread["<lone@example.com>"] == "<lone@example.com>"
    assert thread["<h2@acme.example>"] == "<h1@example.com>"

    a1 = by_id["<a1@acme.example>"]
    assert a1["body"] == "Hi Ann,\nthe refund was issued today."
    assert a1["signature"] == "Bob, Acme Support"
    assert "where is my refund for order 123?" in a1["quoted"]
    assert a1["sender"] == "bob@acme.example" and a1["in_reply_to"] == "<q1@example.com>"
    q1 = by_id["<q1@example.com>"]
    assert q1["body"] == "Hello,\nwhere is my refund for order 123?"
    assert q1["signature"] == "Sent from my iPhone"
    assert q1["date"].isoformat() == "2024-01-01T10:00:00+00:00"
    assert q1["_origin"] == "support.mbox#<q1@example.com>"
    assert by_id["<h1@example.com>"]["body"] == "My item arrived broken.\n\nPhoto attached."
    assert rows.schema["date"] == pl.Datetime("us", "UTC")

    bad = batch.rejected.row(0, named=True)
    assert bad["_rule"] == "corrupt" and "undecodable" in bad["_detail"]
    assert bad["_origin"] == "support.mbox:msg 8"
    assert b"Message-ID: <broken@example.com>" in bad["_raw"]


def test_mbox_pairing_one_row_per_thread(mbox_dir: Path):
    spec = MboxSource(format="mbox", path="support.mbox", pairing={"agent": ["*@acme.example"]})
    batch = read_source("mail", spec, mbox_dir)
    assert batch.rows.columns == [*PAIRED_EMAIL_COLUMNS, "_origin"]
    # threads: refund (paired), lone (unpaired), broken item (paired); plus one corrupt message
    assert batch.rows_in == 4 == batch.rows.height + batch.rejected.height
    assert sorted(batch.rejected["_rule"].to_list()) == ["corrupt", "unpaired"]
    unpaired = batch.rejected.filter(pl.col("_rule") == "unpaired").row(0, named=True)
    assert unpaired["_origin"] == "support.mbox#<lone@example.com>"
    assert unpaired["_detail"] == "thread of 1 message has no agent reply"

    refund = batch.rows.filter(pl.col("thread_id") == "<q1@example.com>").row(0, named=True)
    assert refund["customer"] == "ann@example.com"
    assert refund["agent"] == "bob@acme.example"
    assert refund["query"] == "Hello,\nwhere is my refund for order 123?"
    assert refund["reply"] == "Hi Ann,\nthe refund was issued today."
    assert refund["subject"] == "Refund for order 123"
    assert refund["message_id"] == "<q1@example.com>"
    # Carol's upper-case address still matches the agent pattern.
    assert [t["role"] for t in refund["turns"]] == ["user", "assistant", "user", "assistant"]
    assert refund["turns"][3]["content"] == "VAT is included."
    assert batch.rows.schema["turns"] == pl.List(pl.Struct({"role": pl.String, "content": pl.String}))


def test_consecutive_messages_of_one_role_merge_into_one_turn(tmp_path: Path):
    follow_up = _mail("<q1b@example.com>", "ann@example.com", "Re: Refund", "Also: order 124.\n",
                      date="Mon, 01 Jan 2024 10:30:00 +0000", in_reply_to="<q1@example.com>")
    (tmp_path / "m.mbox").write_bytes(_mbox(Q1, follow_up, A1))
    batch = read_source("m", MboxSource(format="mbox", path="m.mbox", pairing={"agent": ["*@acme.example"]}),
                        tmp_path)
    turns = batch.rows["turns"][0].to_list()
    assert [t["role"] for t in turns] == ["user", "assistant"]
    assert turns[0]["content"] == "Hello,\nwhere is my refund for order 123?\n\nAlso: order 124."


def test_eml_folder_threads_across_files(tmp_path: Path):
    mail = tmp_path / "mail"
    mail.mkdir()
    (mail / "01.eml").write_text(Q1)
    (mail / "02.eml").write_text(A1)
    (mail / "03.eml").write_text(LONE)
    (mail / "04.eml").write_bytes(b"\x00\x01 not an email at all \xff\xfe")
    (mail / "notes.txt").write_text("ignored: not an .eml")
    batch = read_source("mail", EmlSource(format="eml", path="mail/*.eml"), tmp_path)
    assert batch.files == ["mail/01.eml", "mail/02.eml", "mail/03.eml", "mail/04.eml"]
    assert batch.rows_in == 4 and batch.rows.height == 3
    assert batch.rows["_origin"].to_list() == ["mail/01.eml", "mail/02.eml", "mail/03.eml"]
    assert batch.rows["thread_id"].to_list() == ["<q1@example.com>", "<q1@example.com>", "<lone@example.com>"]
    bad = batch.rejected.row(0, named=True)
    assert bad["_origin"] == "mail/04.eml" and bad["_raw"] == (mail / "04.eml").read_bytes()

    paired = read_source("mail", EmlSource(format="eml", path="mail", pairing={"agent": ["bob@acme.example"]}),
                         tmp_path)
    assert paired.rows.height == 1 and paired.rows["reply"][0] == "Hi Ann,\nthe refund was issued today."
    assert paired.rows["_origin"][0] == "mail/01.eml"
    assert sorted(paired.rejected["_rule"].to_list()) == ["corrupt", "unpaired"]


def test_thread_root_missing_from_archive_uses_references(tmp_path: Path):
    (tmp_path / "m.mbox").write_bytes(_mbox(A2, Q2))  # the root <q1> and <a1> are not in the data
    batch = read_source("m", MboxSource(format="mbox", path="m.mbox"), tmp_path)
    assert batch.rows["thread_id"].to_list() == ["<q1@example.com>", "<q1@example.com>"]


def test_mbox_escaped_from_lines_and_message_without_id(tmp_path: Path):
    msg = "From: a@example.com\nSubject: hi\n\nline one\n>From the start\n"
    (tmp_path / "m.mbox").write_bytes(_mbox(msg))
    batch = read_source("m", MboxSource(format="mbox", path="m.mbox"), tmp_path)
    row = batch.rows.row(0, named=True)
    assert row["message_id"] is None and row["_origin"] == "m.mbox:msg 1"
    assert row["body"] == "line one\nFrom the start"
    assert row["thread_id"] == "m.mbox:msg 1"


def test_email_contract_checks_fixed_columns(mbox_dir: Path):
    from llmspec.spec.errors import DataError

    with pytest.raises(DataError) as err:
        read_source("m", MboxSource(format="mbox", path="support.mbox", columns={"bodyy": "str"}), mbox_dir)
    assert "bodyy" in str(err.value) and "did you mean 'body'" in str(err.value)
    batch = read_source("m", MboxSource(format="mbox", path="support.mbox", columns={"sender": "str"}), mbox_dir)
    assert batch.rows.height == 7
