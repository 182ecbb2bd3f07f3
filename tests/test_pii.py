"""PII redaction: what must be redacted, what must not, and the vectorised path agreeing with
the per-string reference."""

from __future__ import annotations

import random

import polars as pl
import pytest

from llmspec.compiler.cleaning import compile_cleaning
from llmspec.runtime.clean.run import run_cleaning
from llmspec.runtime.clean.pii import KINDS, iban_ok, is_card, luhn_ok, redact_all, redact_values
from llmspec.runtime.sources import SourceBatch
from llmspec.spec.models import QualitySpec

P = {k: f"<{k.upper()}>" for k in KINDS}


def with_check_digit(body: str) -> str:
    """body + the digit that makes it Luhn-valid."""
    return next(body + d for d in "0123456789" if luhn_ok(body + d))


def without_luhn(body: str) -> str:
    return next(body + d for d in "0123456789" if not luhn_ok(body + d))


@pytest.mark.parametrize("text, expected", [
    ("write to jo.doe+tag@mail.example.co.uk.", "write to <EMAIL>."),
    ("A@B.IO and c_d@x-y.org", "<EMAIL> and <EMAIL>"),
    ("call +44 20 7946 0958 today", "call <PHONE> today"),
    ("+1 (555) 123-4567", "<PHONE>"),
    ("+49 30 1234567", "<PHONE>"),
    ("0049 30 1234567", "<PHONE>"),
    ("+33.1.23.45.67.89", "<PHONE>"),
    ("(555) 123-4567", "<PHONE>"),
    ("555-123-4567 or 555.123.4567", "<PHONE> or <PHONE>"),
    ("card 4111 1111 1111 1111 exp 12/27", "card <CREDIT_CARD> exp 12/27"),
    ("4111-1111-1111-1111", "<CREDIT_CARD>"),
    ("amex 378282246310005.", "amex <CREDIT_CARD>."),
    ("mc 5555555555554444, thanks", "mc <CREDIT_CARD>, thanks"),
    ("card 4111 1111 1111 1111 2024 ok", "card <CREDIT_CARD> ok"),  # a run holding a card goes whole
    ("host 10.0.0.1.", "host <IP>."),
    ("192.168.1.254:8080", "<IP>:8080"),
    ("2001:db8::1 and fe80::1ff:fe23:4567:890a.", "<IP> and <IP>."),
    ("::ffff:192.168.1.1", "<IP>"),
    ("GB82 WEST 1234 5698 7654 32", "<IBAN>"),
    ("iban DE89370400440532013000!", "iban <IBAN>!"),
    ("de89 3704 0044 0532 0130 00", "<IBAN>"),  # lower-cased by an earlier normalize
    ("DE89 3704 0044 0532 0130 00 OK thanks", "<IBAN> OK thanks"),
    # back to back: each found, none half-redacted
    ("GB82 WEST 1234 5698 7654 32 GB82 WEST 1234 5698 7654 32", "<IBAN> <IBAN>"),
    ("(555) 123-4567 4111 1111 1111 1111", "<PHONE> <CREDIT_CARD>"),
    ("+44 20 7946 0958 555-123-4567", "<PHONE>"),
    ("1234 5678 9012 3456 4111 1111 1111 1111", "<CREDIT_CARD>"),
])
def test_must_redact(text, expected):
    assert redact_all(text, P) == expected


@pytest.mark.parametrize("text", [
    "order #12345 shipped on 2024-01-15 at 10:30:00",
    "price +15.00 EUR, 3.5% off",
    "version 1.2.3.4", "v1.2.3.4", "Build 10.0.19041.1", "release 2.0.0.1", "1.2.3.4.5",
    "256.1.1.1 is not an address",
    "mac 00:1A:2B:3C:4D:5E", "std::vector<int>", "ratio 3:2:1",
    "order 00123456789",  # 00-prefixed but ungrouped: an order number, not a phone
    "GB82 WEST 1234 5698 7654 33",  # IBAN shape, wrong checksum
    "a@b", "user@localhost",
])
def test_must_not_redact(text):
    assert redact_all(text, P) == text


def test_sixteen_digit_order_number_failing_luhn_is_not_a_card():
    order = without_luhn("412345678901234")
    assert len(order) == 16 and not luhn_ok(order)
    assert redact_all(f"Order {order} shipped", P) == f"Order {order} shipped"
    card = with_check_digit("412345678901234")
    assert redact_all(f"Card {card} charged", P) == "Card <CREDIT_CARD> charged"


def test_luhn_valid_number_without_a_card_prefix_is_not_a_card():
    # ISO/IEC 7812: cards start with 2-6; a Luhn-valid tracking number starting with 9 is not one
    tracking = with_check_digit("911111111111111")
    assert luhn_ok(tracking) and not is_card(tracking)
    assert redact_all(tracking, P) == tracking


def test_validators():
    assert iban_ok("GB82WEST12345698765432") and iban_ok("gb82 west 1234 5698 7654 32")
    assert not iban_ok("GB82WEST12345698765431") and not iban_ok("GB82")
    assert is_card("4111-1111-1111-1111") and not is_card("4111-1111-1111-1112")


def test_placeholder_and_kinds_subset():
    text = "jo@example.com +44 20 7946 0958 10.0.0.1"
    assert redact_all(text, {"email": "[EMAIL]"}) == "[EMAIL] +44 20 7946 0958 10.0.0.1"
    q = QualitySpec.model_validate({"rules": [{"redact_pii": {"kinds": ["ip", "phone"], "placeholder": "[{KIND}]"}}]})
    rows = pl.DataFrame({"t": [text], "_origin": ["f:1"]})
    empty = pl.DataFrame(schema={"_rule": pl.String, "_detail": pl.String, "_origin": pl.String, "_raw": pl.Binary})
    r = run_cleaning(SourceBatch("s", rows, empty, 1, []), compile_cleaning(q, "s", dict(rows.schema)))
    assert r.kept["t"].to_list() == ["jo@example.com [PHONE] [IP]"]
    assert r.modified == {"redact_pii": 1}


def _random_text(rng: random.Random) -> str:
    pieces = ["hello", "order", "12345", "jo@example.com", "+44 20 7946 0958", "4111 1111 1111 1111",
              "1234 5678 9012 3456", "10.0.0.1", "version 1.2.3.4", "GB82 WEST 1234 5698 7654 32", "2001:db8::1",
              "555-123-4567", "(555) 123-4567", "at 10:30:00", "DE89370400440532013000", ",", ".", "\n"]
    return " ".join(rng.choice(pieces) for _ in range(rng.randint(0, 8)))


def test_vectorised_path_agrees_with_the_reference_per_string():
    rng = random.Random(7)
    texts = [_random_text(rng) for _ in range(400)] + [None]
    got = redact_values(pl.Series(texts, dtype=pl.String), P).to_list()
    assert got == [None if t is None else redact_all(t, P) for t in texts]


def test_no_pii_left_in_kept_rows_of_a_frame():
    rng = random.Random(3)
    texts = [_random_text(rng) for _ in range(300)]
    rows = pl.DataFrame({"t": texts, "_origin": [f"f:{i}" for i in range(len(texts))]})
    empty = pl.DataFrame(schema={"_rule": pl.String, "_detail": pl.String, "_origin": pl.String, "_raw": pl.Binary})
    q = QualitySpec.model_validate({"rules": [{"redact_pii": {}}]})
    r = run_cleaning(SourceBatch("s", rows, empty, len(texts), []), compile_cleaning(q, "s", dict(rows.schema)))
    kept = r.kept["t"].to_list()
    for secret in ("jo@example.com", "7946 0958", "4111 1111", "10.0.0.1", "GB82", "2001:db8", "DE8937"):
        assert not any(secret in t for t in kept), secret
    assert "version 1.2.3.4" in " ".join(kept) and "1234 5678 9012 3456" in " ".join(kept)
    assert r.modified["redact_pii"] == sum(a != b for a, b in zip(texts, kept))
