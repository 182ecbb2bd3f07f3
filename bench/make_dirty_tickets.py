#!/usr/bin/env python3
"""Write a dirty support-ticket JSONL for the cleaning benchmarks, and what was planted in it.

    python bench/make_dirty_tickets.py OUT.jsonl [-n 400000] [--seed 7]

Writes OUT.jsonl and OUT.truth.json (1-based line numbers of every planted defect, the line each
duplicate copies, and the PII strings planted, so a bench can check each one is rejected or redacted). Deterministic: a fixed
seed, no clock, stdlib only.

Defects, as shares of lines: corrupt JSON (0.5%), invalid UTF-8 bytes (0.3%), control characters
(0.2%), blank bodies (1%), placeholder replies (1%), PII in the body (10%: emails, phones, Luhn-valid
cards, IBANs with valid check digits, IPv4), 16-digit order numbers failing Luhn (3%, must be
kept), exact duplicates (3%), whitespace/case variants of earlier tickets (2%), near duplicates
(one-word edits, 2%), and blank lines (0.1%, not units).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

SYLLABLES = ["ka", "lo", "mi", "ne", "ru", "ta", "vo", "zen", "pri", "sol", "dar", "fe", "gu", "hin", "jo",
             "ber", "cas", "tem", "wil", "xo", "yu", "bra", "clo", "dru", "fin", "gar", "hol", "ist", "kor"]
PRODUCTS = ["router", "smart plug", "cloud backup", "camera", "thermostat", "doorbell", "speaker", "hub",
            "mesh extender", "light strip", "sensor", "lock"]
ISSUES = ["keeps disconnecting", "will not turn on", "shows a red light", "is very slow", "lost its settings",
          "cannot be found in the app", "makes a clicking noise", "stopped syncing", "reboots every hour",
          "charges twice a month", "fails the update", "drops the wifi at night"]
OPENERS = ["Hello,", "Hi team,", "Good morning,", "Dear support,", "Hey,", "Hi there,", "Hello support team,"]
CLOSERS = ["Thanks.", "Kind regards.", "Please help.", "Thank you in advance.", "Cheers.", "Best wishes."]
REPLIES = ["Please unplug the {p} for ten seconds and plug it back in.",
           "We have reset your {p} remotely; give it a few minutes.",
           "A replacement {p} is on its way and should arrive within {d} days.",
           "Please update the app to the latest version and pair the {p} again.",
           "We refunded the duplicate charge; it shows on your statement in {d} days.",
           "Hold the reset button on the {p} for {d} seconds until the light blinks.",
           "Your {p} firmware was rolled back; the problem should be gone now."]
PLACEHOLDERS = ["N/A", "n/a", "TODO", "tbd", "-", "...", "Lorem ipsum dolor sit amet"]
NAMES = ["anna", "bob", "chen", "dita", "emil", "fatima", "goran", "hana", "ivo", "jules", "kemal", "lena"]
DOMAINS = ["example.com", "mail.example.org", "corp.example.net", "example.co.uk"]


def _word(rng: random.Random) -> str:
    return "".join(rng.choice(SYLLABLES) for _ in range(rng.randint(2, 3)))


def _luhn_digit(body: str) -> str:
    total = 0
    for i, ch in enumerate(reversed(body)):
        d = int(ch)
        if i % 2 == 0:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return str((10 - total % 10) % 10)


def _card(rng: random.Random) -> str:
    body = rng.choice("45") + "".join(rng.choice("0123456789") for _ in range(14))
    number = body + _luhn_digit(body)
    return " ".join(number[i:i + 4] for i in range(0, 16, 4)) if rng.random() < 0.5 else number


def _order_number(rng: random.Random) -> str:
    body = rng.choice("123456789") + "".join(rng.choice("0123456789") for _ in range(14))
    good = _luhn_digit(body)
    return body + rng.choice([d for d in "0123456789" if d != good])  # fails Luhn: not a card


def _iban(rng: random.Random) -> str:
    bban = "".join(rng.choice("0123456789") for _ in range(18))
    digits = "".join(str(int(c, 36)) for c in bban + "DE00")
    check = 98 - int(digits) % 97
    iban = f"DE{check:02d}{bban}"
    return " ".join(iban[i:i + 4] for i in range(0, len(iban), 4)) if rng.random() < 0.5 else iban


def _phone(rng: random.Random) -> str:
    d = lambda k: "".join(rng.choice("0123456789") for _ in range(k))  # noqa: E731
    return rng.choice([f"+44 20 {d(4)} {d(4)}", f"+1 ({rng.randint(200, 989)}) {d(3)}-{d(4)}",
                       f"+49 30 {d(7)}", f"({rng.randint(200, 989)}) {d(3)}-{d(4)}"])


def _ip(rng: random.Random) -> str:
    return f"{rng.randint(11, 223)}.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"


def _email(rng: random.Random) -> str:
    return f"{rng.choice(NAMES)}.{_word(rng)}{rng.randint(1, 999)}@{rng.choice(DOMAINS)}"


def _ticket(rng: random.Random) -> dict:
    p = rng.choice(PRODUCTS)
    words = [_word(rng) for _ in range(rng.randint(8, 20))]
    body = (f"{rng.choice(OPENERS)} my {p} {rng.choice(ISSUES)} since {rng.randint(2, 30)} days. "
            f"I tried {' '.join(words[:len(words) // 2])} and then {' '.join(words[len(words) // 2:])}. "
            f"{rng.choice(CLOSERS)}")
    reply = rng.choice(REPLIES).format(p=p, d=rng.randint(2, 14)) + " " + " ".join(_word(rng) for _ in range(6))
    return {"subject": f"{p.title()} {rng.choice(ISSUES)}", "body": body, "reply": reply,
            "channel": rng.choice(["email", "chat", "phone", "web"])}


def _variant(rng: random.Random, t: dict) -> dict:
    """The same ticket as a person retyping it would: spacing and case change, nothing else."""
    out = dict(t)
    out["subject"] = t["subject"].upper() if rng.random() < 0.5 else "  " + t["subject"]
    out["body"] = t["body"].replace(" ", "  ", 3) + " \n"
    return out


def _near(rng: random.Random, t: dict) -> dict:
    out = dict(t)
    words = t["body"].split(" ")
    i = rng.randrange(3, len(words) - 2)
    words[i] = _word(rng)
    out["body"] = " ".join(words)
    return out


def generate(n: int, seed: int = 7) -> tuple[list[bytes], dict]:
    truth: dict[str, list] = {}
    lines = list(iter_lines(n, seed, truth))
    return lines, truth


def iter_lines(n: int, seed: int, truth: dict):
    """The lines one by one (a 10M-line file never sits in memory); ``truth`` is filled as they go."""
    rng = random.Random(seed)
    count = 0
    truth.update({k: [] for k in (
        "corrupt_json", "bad_bytes", "control_chars", "blank_body", "placeholder", "pii", "order_numbers",
        "exact_dup", "variant_dup", "near_dup", "clean")})
    truth["pii_strings"] = []
    truth["copied_from"] = []  # [line, the line it copies], for the *_dup kinds
    truth["order_strings"] = []
    pool: list[tuple[int, dict]] = []  # (line, clean ticket) later lines copy from
    tid = 0
    while count < n:
        r = rng.random()
        tid += 1
        count += 1
        line_no = count
        if r < 0.001:
            yield b"   "
            continue
        if r < 0.006:
            text = json.dumps(_ticket(rng))
            yield text[:rng.randint(5, len(text) - 2)].encode()
            truth["corrupt_json"].append(line_no)
            continue
        if r < 0.009:
            t = _ticket(rng)
            raw = json.dumps({"ticket_id": tid, **t}, ensure_ascii=False).encode()
            cut = raw.index(b'"body": "') + 12
            yield raw[:cut] + b"\xff\xfe" + raw[cut:]
            truth["bad_bytes"].append(line_no)
            continue
        t = None
        kind = "clean"
        if r < 0.011:
            t = _ticket(rng)
            t["body"] = t["body"].replace(" ", "\u0007", 1)
            kind = "control_chars"
        elif r < 0.021:
            t = _ticket(rng)
            t["body"] = rng.choice(["", "   ", None])
            kind = "blank_body"
        elif r < 0.031:
            t = _ticket(rng)
            t["reply"] = rng.choice(PLACEHOLDERS)
            kind = "placeholder"
        elif r < 0.131:
            t = _ticket(rng)
            secret = rng.choice([_email, _phone, _card, _iban, _ip])(rng)
            t["body"] = t["body"].replace(" since ", f" since (contact {secret}) ", 1)
            truth["pii_strings"].append(secret)
            kind = "pii"
        elif r < 0.161:
            t = _ticket(rng)
            order = _order_number(rng)
            t["body"] += f" Order {order}."
            truth["order_strings"].append(order)
            kind = "order_numbers"
        elif r < 0.191 and pool:
            src, t = rng.choice(pool)
            t = dict(t)
            kind = "exact_dup"
        elif r < 0.211 and pool:
            src, t = rng.choice(pool)
            t = _variant(rng, t)
            kind = "variant_dup"
        elif r < 0.231 and pool:
            src, t = rng.choice(pool)
            t = _near(rng, t)
            kind = "near_dup"
        if t is None:
            t = _ticket(rng)
            kind = "clean"
        if kind in ("clean", "order_numbers", "pii") and len(pool) < 50_000:
            pool.append((line_no, t))
        truth[kind].append(line_no)
        if kind.endswith("_dup"):
            truth["copied_from"].append([line_no, src])
        record = {"ticket_id": tid, **t, "created_at": f"2024-{1 + tid % 12:02d}-{1 + tid % 28:02d}"}
        yield json.dumps(record, ensure_ascii=rng.random() < 0.5).encode()


def write(out: Path, n: int, seed: int = 7) -> dict:
    """Write OUT and OUT.truth.json, streaming; returns the truth."""
    truth: dict = {}
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "wb", buffering=1 << 20) as fh:
        for line in iter_lines(n, seed, truth):
            fh.write(line)
            fh.write(b"\n")
    out.with_suffix(".truth.json").write_text(json.dumps(truth))
    return truth


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("-n", type=int, default=400_000, help="lines to write (default 400000)")
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args(argv)
    truth = write(args.out, args.n, args.seed)
    counts = {k: len(v) for k, v in truth.items()}
    print(f"wrote {args.out} ({args.n:,} lines): {counts}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
