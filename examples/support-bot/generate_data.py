#!/usr/bin/env python3
"""Generate the synthetic Acme support data: data/tickets.jsonl and data/support.mbox.

Stdlib only and fully deterministic (fixed seed, no clock, no locale, no set ordering), so the
committed files can be checked against a fresh run. Usage:

    python examples/support-bot/generate_data.py [--out DIR]
"""
from __future__ import annotations

import argparse
import base64
import quopri
import html as htmllib
import json
import random
import re
import textwrap
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime, formataddr
from pathlib import Path

SEED = 20240607
HERE = Path(__file__).resolve().parent

ROUTER, BACKUP, PLUG = "Acme Router", "Acme Cloud Backup", "Acme Smart Plug"

# One short sentence per intent, each with a phrase nothing else in the data says, so that a tiny
# model can learn them by rote and an acceptance test can look for the phrase.
CANONICAL = {
    "refund": {
        "answer": "You can return any Acme product within 30 days of delivery for a full refund.",
        "key_phrase": "30 days",
    },
    "router_reset": {
        "answer": "Hold the reset button for 10 seconds until the light blinks orange.",
        "key_phrase": "hold the reset button for 10 seconds",
    },
    "plug_pairing": {
        "answer": "Press the plug button three times to start pairing mode.",
        "key_phrase": "three times",
    },
    "backup_restore": {
        "answer": "Open the Versions tab in the Cloud Backup app to restore an earlier copy.",
        "key_phrase": "Versions tab",
    },
    "password": {
        "answer": "Acme staff will never ask for your password, so please do not share it.",
        "key_phrase": "never ask for your password",
    },
    "warranty": {
        "answer": "Every Acme device has a 2-year warranty covering hardware faults.",
        "key_phrase": "2-year warranty",
    },
}
INTENTS = list(CANONICAL)

# Paraphrases for acceptance tests; the generator refuses to emit any of them (see _check_held_out).
HELD_OUT_PROMPTS = {
    "refund": "I ordered the smart plug nine days ago and no longer need it. Can I still return it?",
    "router_reset": "My Acme Router is unresponsive. How do I reset it back to factory settings?",
    "plug_pairing": "How do I get my new Acme Smart Plug into pairing mode so the app can see it?",
    "backup_restore": "I deleted an important folder. How can I restore an older copy from Cloud Backup?",
    "password": "Someone claiming to be from Acme asked me for my password on the phone. Is that legitimate?",
    "warranty": "My Acme Router broke after fourteen months. What warranty does it have?",
    "router_reset_2": "What is the right way to factory reset the router?",
    "warranty_2": "How long is the warranty on an Acme Smart Plug?",
}

# ---------------------------------------------------------------- question paraphrases

WHEN = ["last week", "two weeks ago", "on Monday", "yesterday", "ten days ago",
        "at the start of the month", "over the weekend", "three days ago"]
ITEMS = [("Acme Router", ROUTER), ("Acme Smart Plug", PLUG), ("smart plug", PLUG),
         ("router", ROUTER), ("Acme Cloud Backup subscription", BACKUP)]
DEVICES = [("Acme Router", ROUTER), ("Acme Smart Plug", PLUG), ("router", ROUTER),
           ("smart plug", PLUG)]
FILES = ["tax folder", "wedding photos", "budget spreadsheet", "thesis draft",
         "client contracts", "holiday videos", "recipe collection", "invoices folder"]

CORES = {
    "refund": [
        "Can I return my {item} for a refund?",
        "What is your return policy for the {item}?",
        "How long do I have to send back the {item}?",
        "Is it too late to get my money back for the {item}?",
        "I want a refund for the {item}, it is not what I expected.",
        "Do you accept returns on the {item} if the box has been opened?",
        "What is the deadline for returning an {item}?",
        "Can I get a full refund on the {item} I ordered {when}?",
        "I changed my mind about the {item}. Can I send it back?",
        "How many days do I have to return the {item}?",
        "The {item} does not suit us, can we return it and get our money back?",
        "Where can I see the refund window for {item} orders?",
        "My {item} arrived {when}. Am I still inside the return period?",
    ],
    "router_reset": [
        "How do I reset my {router}?",
        "How can I factory reset the {router}?",
        "What is the way to reset the {router} to factory settings?",
        "My {router} is frozen, how do I do a hard reset?",
        "I forgot the admin login of my {router}, how do I reset it to defaults?",
        "The lights on my {router} keep flashing red. How do I reset it?",
        "Which button resets the {router}?",
        "How long do I press the reset button on the {router}?",
        "The internet keeps dropping, how do I reset the {router} completely?",
        "The {router} will not connect after a firmware update, how do I reset it?",
        "What are the steps to wipe all settings on the {router}?",
        "I need to set up the {router} from scratch. How do I reset it?",
        "Is there a way to reset the {router} without the app?",
    ],
    "plug_pairing": [
        "How do I pair my {plug}?",
        "How do I put the {plug} into pairing mode?",
        "My {plug} will not connect to the app, how do I pair it?",
        "The app cannot find the {plug}. What should I do to pair it?",
        "How do I connect a new {plug} to my phone?",
        "What do I press to pair the {plug} again?",
        "I replaced my phone, how do I pair the {plug} with it?",
        "The {plug} is not showing up in the app and will not pair. Help?",
        "How do I link the {plug} to the Acme Home app?",
        "I am setting up a second {plug}, how does pairing work?",
        "The {plug} is not discoverable, how do I make it pair?",
        "What is the pairing procedure for the {plug}?",
    ],
    "backup_restore": [
        "How do I restore a deleted file from {backup}?",
        "I overwrote a document by mistake, can {backup} get the old copy back?",
        "Where do I find older versions of my files in {backup}?",
        "How can I recover the {file} I deleted {when} with {backup}?",
        "How do I get back yesterday's version of my {file} from {backup}?",
        "Can I roll back a folder to an earlier copy in {backup}?",
        "My laptop died. How do I restore my files from {backup}?",
        "Is there a way to recover an earlier version of the {file} in {backup}?",
        "Ransomware encrypted my files, how do I restore clean copies from {backup}?",
        "Where in {backup} can I restore previous file versions?",
        "I lost the {file} after a crash. Can {backup} bring it back?",
        "How far back can I restore the {file} from {backup}?",
    ],
    "password": [
        "I got an email from Acme asking for my password. Is it real?",
        "Someone called claiming to be Acme support and wanted my password. Should I give it?",
        "Does Acme ever ask customers for their account password?",
        "A chat agent asked me to type my password to verify my account, is that normal?",
        "Is it safe to send my password to your support team by email?",
        "I received a text message asking me to confirm my Acme password. Is it legit?",
        "Your technician wants my password to look at the {device}. Is that okay?",
        "Should I share my password with Acme support so they can check my account?",
        "I got a suspicious message asking for my login password, did Acme send it?",
        "Do I need to give you my password before you can look at my {device}?",
        "A pop-up in the {device} app asked for my password again. Is that from Acme?",
        "Will an Acme employee ever need my account password?",
    ],
    "warranty": [
        "How long is the warranty on the {device}?",
        "My {device} stopped working after a year, is it still under warranty?",
        "Does the {device} come with a warranty?",
        "What does the {device} warranty cover?",
        "The {device} died after eight months, will you replace it under warranty?",
        "Is a faulty {device} covered by the warranty?",
        "What warranty do I get when I buy an {device}?",
        "My {device} has a hardware fault, am I covered?",
        "How many years of warranty does the {device} have?",
        "Is the {device} warranty one year or longer?",
        "Will you repair my {device} for free if it breaks?",
        "What happens if my {device} fails while it is still new?",
    ],
}

CONTEXTS = {
    "refund": ["It arrived {when} and it does not fit our setup.", "We found a cheaper option elsewhere.",
               "It was a duplicate order by my partner.", "I bought the {item} {when} as a gift.",
               "The colour is not what the website showed."],
    "router_reset": ["Our internet has been dropping all evening.", "The status light is stuck on red.",
                     "Nobody in the house can get online.", "We moved house {when}.",
                     "My previous provider set it up for me."],
    "plug_pairing": ["I just installed the Acme Home app.", "The plug light is blinking slowly.",
                     "We changed our Wi-Fi name {when}.", "It worked fine until the power cut.",
                     "I bought two of them {when}."],
    "backup_restore": ["I deleted the {file} by accident.", "My disk crashed {when}.",
                       "I am not very technical.", "This is really urgent for work.",
                       "A colleague saved over my version."],
    "password": ["The message looked very official.", "The sender used the Acme logo.",
                 "It came from an address I do not recognise.", "This happened {when}.",
                 "My elderly father got the same request."],
    "warranty": ["It will not power on anymore.", "The case cracked from the heat.",
                 "I bought it {when} from your online shop.", "It makes a buzzing noise now.",
                 "I still have the receipt."],
}
OPENERS = ["", "", "", "Hi, ", "Hello, ", "Hey there, ", "Good morning, ", "Quick question: ",
           "Hi Acme team, ", "Hello support, "]
CLOSERS = ["", "", "", " Thanks!", " Thanks in advance.", " Please advise.",
           " Any help appreciated.", " Cheers.", " Thank you."]

# Real exports are never this tidy, but questions generated from one template must not become
# accidental near-duplicates of each other, or the planted ones could not be counted.
MAX_SIMILARITY = 0.6


def _norm(text: str) -> str:
    return " ".join(text.lower().split())


def shingles(text: str, k: int = 5) -> set[str]:
    t = _norm(text)
    return {t[i:i + k] for i in range(max(1, len(t) - k + 1))}


def jaccard(a: set, b: set) -> float:
    return len(a & b) / len(a | b) if a or b else 1.0


def _slots(rng: random.Random) -> dict[str, str]:
    """One set of slot values per question, so its context and its core name the same product."""
    item, item_product = rng.choice(ITEMS)
    device, device_product = rng.choice(DEVICES)
    return {
        "item": item, "item_product": item_product,
        "device": device, "device_product": device_product,
        "router": rng.choice(["Acme Router", "router", "Acme router"]),
        "plug": rng.choice(["Acme Smart Plug", "smart plug", "Acme plug"]),
        "backup": rng.choice(["Acme Cloud Backup", "Cloud Backup", "the backup app"]),
        "when": rng.choice(WHEN), "file": rng.choice(FILES),
    }


def _fill(template: str, slots: dict[str, str]) -> tuple[str, str | None]:
    """Fill one template; returns the text and the product it names (None when it names none)."""
    product = None
    if "{item}" in template:
        product = slots["item_product"]
    elif "{device}" in template:
        product = slots["device_product"]
    return template.format(**slots), product


DEFAULT_PRODUCT = {"router_reset": ROUTER, "plug_pairing": PLUG, "backup_restore": BACKUP}


def _candidate(rng: random.Random, intent: str) -> tuple[str, str | None]:
    slots = _slots(rng)
    core, product = _fill(rng.choice(CORES[intent]), slots)
    parts = []
    if rng.random() < 0.6:
        ctx, ctx_product = _fill(rng.choice(CONTEXTS[intent]), slots)
        parts.append(ctx)
        product = product or ctx_product
    parts.append(core)
    text = " ".join(parts)
    opener = rng.choice(OPENERS)
    if opener and not text.startswith(("I ", "Acme")):
        text = opener + text[0].lower() + text[1:]
    elif opener:
        text = opener + text
    text += rng.choice(CLOSERS)
    style = rng.random()
    if style < 0.08:
        text = text.lower()
    elif style < 0.13:
        text = text.rstrip("?.!")
    product = product or DEFAULT_PRODUCT.get(intent) or rng.choice([ROUTER, PLUG, BACKUP])
    return text, product


class QuestionPool:
    """Distinct, mutually dissimilar questions per intent, drawn without replacement."""

    def __init__(self, rng: random.Random, per_intent: int):
        self.items: dict[str, list[tuple[str, str]]] = {i: [] for i in INTENTS}
        accepted: list[set[str]] = []
        held = [shingles(p) for p in HELD_OUT_PROMPTS.values()]
        for intent in INTENTS:
            tries = 0
            while len(self.items[intent]) < per_intent:
                tries += 1
                if tries > 200_000:
                    raise RuntimeError(f"cannot find {per_intent} distinct questions for {intent}")
                text, product = _candidate(rng, intent)
                sh = shingles(text)
                if any(jaccard(sh, o) >= MAX_SIMILARITY for o in accepted):
                    continue
                if any(jaccard(sh, h) >= 0.8 for h in held):
                    continue
                accepted.append(sh)
                self.items[intent].append((text, product))
        for intent in INTENTS:
            rng.shuffle(self.items[intent])

    def take(self, intent: str) -> tuple[str, str]:
        return self.items[intent].pop()


# ---------------------------------------------------------------- tickets.jsonl

N_BASE_TICKETS = 300
PLANT = {  # defect -> rows; README.md states the same figures and a test compares them
    "truncated_json": 4,
    "garbage_line": 2,
    "invalid_utf8": 2,
    "exact_duplicate": 8,
    "whitespace_case_duplicate": 8,
    "near_duplicate": 8,
    "blank_answer": 6,
    "placeholder_answer": 6,
    "email_in_question": 10,
    "phone_in_question": 10,
    "order_number_not_card": 5,
    "valid_test_card": 2,
    "product_key_absent": 12,
    "product_null": 8,
}
PHONES = ["+44 20 7946 0958", "+1 (555) 010-0199", "+1-555-010-0142", "+49 30 12345678",
          "+33 1 70 18 99 00", "+61 2 5550 1234", "+91 98765 43210", "+81 3-5555-0123",
          "+353 1 555 0147", "+46 8 555 012 34"]
EMAILS = ["jane.doe@example.com", "SAM.LEE@EXAMPLE.ORG", "k.nakamura+acme@example.net",
          "oliver_brown@example.com", "m.garcia@mail.example.org", "priya.s@example.net",
          "tom-h@example.com", "anna.kowalska@example.org", "li.wei88@example.com",
          "f.dubois@example.net"]
EMAIL_SENTENCES = ["My account email is {x}.", "Please reply to {x}.", "I registered with {x}.",
                   "You can email me at {x}.", "Contact me on {x} if you need details."]
PHONE_SENTENCES = ["You can call me on {x}.", "My number is {x}.", "Please ring me at {x} after 5pm.",
                   "Call {x} if email is easier."]
TEST_CARDS = ["4111 1111 1111 1111", "5555555555554444"]
PLACEHOLDERS = ["N/A", "<no output>", "see above", "N/A", "<no output>", "see above"]
BLANKS = ["", " ", "", "\t", "   ", ""]
GARBAGE = ["ERROR: export worker timed out after 30s; retrying batch 7",
           "<html><body><h1>502 Bad Gateway</h1></body></html>"]
NEAR_SWAPS = {"bought": "purchased", "yesterday": "today", "week": "month", "really": "very",
              "house": "flat", "arrived": "came", "evening": "night", "deleted": "removed",
              "official": "genuine", "cheaper": "better", "crashed": "failed", "urgent": "important",
              "buzzing": "humming", "cracked": "warped", "installed": "downloaded", "slowly": "fast",
              "changed": "renamed", "receipt": "invoice", "recognise": "know", "colour": "color"}


def luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _order_number(rng: random.Random) -> str:
    while True:
        digits = str(rng.randint(10**15, 10**16 - 1))
        if not luhn_ok(digits):
            break
    if rng.random() < 0.5:
        return " ".join(digits[i:i + 4] for i in range(0, 16, 4))
    return digits


def _ws_case_variant(text: str, k: int) -> str:
    variants = [
        lambda t: "  " + t.replace(" ", "  ", 2) + " ",
        lambda t: t.upper(),
        lambda t: t.replace(" ", "\u00a0", 3),
        lambda t: "\t" + t.swapcase(),
        lambda t: t.replace(" ", "   ") + "\n",
        lambda t: t.lower() + "  ",
        lambda t: " " + t.title(),
        lambda t: t.replace(". ", ".  ") + "   ",
    ]
    out = variants[k % len(variants)](text)
    return out if out != text else text + " "


def _near_variant(text: str) -> str | None:
    words = text.split(" ")
    for i, w in enumerate(words):
        bare = w.strip(".,?!")
        if bare in NEAR_SWAPS and i > 0:
            words[i] = w.replace(bare, NEAR_SWAPS[bare])
            return " ".join(words)
    return None


def build_tickets(rng: random.Random, pool: QuestionPool) -> bytes:
    base: list[dict] = []
    order = [INTENTS[i % len(INTENTS)] for i in range(N_BASE_TICKETS)]
    rng.shuffle(order)
    for intent in order:
        q, product = pool.take(intent)
        base.append({"question": q, "answer": CANONICAL[intent]["answer"], "product": product,
                     "_intent": intent})

    # Each planted defect goes on its own row, so every count stays exact.
    free = list(range(N_BASE_TICKETS))
    rng.shuffle(free)

    def claim(n: int, ok=lambda r: True) -> list[int]:
        got = [i for i in free if ok(base[i])][:n]
        for i in got:
            free.remove(i)
        return sorted(got)

    for k, i in enumerate(claim(PLANT["email_in_question"])):
        base[i]["question"] += " " + rng.choice(EMAIL_SENTENCES).format(x=EMAILS[k])
    for k, i in enumerate(claim(PLANT["phone_in_question"])):
        base[i]["question"] += " " + rng.choice(PHONE_SENTENCES).format(x=PHONES[k])
    for i in claim(PLANT["order_number_not_card"], lambda r: r["_intent"] in ("refund", "warranty")):
        base[i]["question"] += f" My order number is {_order_number(rng)}."
    for k, i in enumerate(claim(PLANT["valid_test_card"], lambda r: r["_intent"] == "refund")):
        base[i]["question"] = (f"I paid with card {TEST_CARDS[k]} and was charged twice. "
                               + base[i]["question"])
    for i in claim(PLANT["product_key_absent"]):
        base[i]["_drop_product"] = True
    for i in claim(PLANT["product_null"]):
        base[i]["product"] = None
    near_src = claim(PLANT["near_duplicate"],
                     lambda r: len(r["question"].split()) >= 14 and _near_variant(r["question"]))
    ws_src = claim(PLANT["whitespace_case_duplicate"])
    exact_src = claim(PLANT["exact_duplicate"])
    if len(near_src) < PLANT["near_duplicate"]:
        raise RuntimeError("not enough long questions to plant near-duplicates")

    # (position key, record); duplicates go after their source, like overlapping export pages.
    placed: list[tuple[float, dict]] = [(float(i), r) for i, r in enumerate(base)]

    def after(i: int) -> float:
        return rng.uniform(i + 0.01, N_BASE_TICKETS)

    for i in exact_src:
        placed.append((after(i), {"_exact_of": base[i]}))
    for k, i in enumerate(ws_src):
        placed.append((after(i), {**base[i], "question": _ws_case_variant(base[i]["question"], k)}))
    for i in near_src:
        placed.append((after(i), {**base[i], "question": _near_variant(base[i]["question"])}))

    def fresh(n: int, **extra) -> None:
        for _ in range(n):
            intent = rng.choice(INTENTS)
            q, product = pool.take(intent)
            rec = {"question": q, "answer": CANONICAL[intent]["answer"], "product": product,
                   "_intent": intent, **extra}
            placed.append((rng.uniform(0, N_BASE_TICKETS), rec))

    for a in BLANKS[:PLANT["blank_answer"]]:
        fresh(1, answer=a)
    for a in PLACEHOLDERS[:PLANT["placeholder_answer"]]:
        fresh(1, answer=a)
    fresh(PLANT["truncated_json"], _truncate=True)
    fresh(PLANT["invalid_utf8"], _bad_bytes=True)
    for g in GARBAGE[:PLANT["garbage_line"]]:
        placed.append((rng.uniform(0, N_BASE_TICKETS), {"_garbage": g}))

    placed.sort(key=lambda p: p[0])
    clock = datetime(2024, 1, 2, 8, 0, 0, tzinfo=timezone.utc)
    next_id = 10001
    lines: list[bytes] = []
    bad_k = 0
    for _, rec in placed:
        if "_garbage" in rec:
            lines.append(rec["_garbage"].encode())
            continue
        if "_exact_of" in rec:
            lines.append(_ticket_json(rec["_exact_of"]).encode())
            continue
        clock += timedelta(minutes=rng.randint(5, 600), seconds=rng.randint(0, 59))
        rec["ticket_id"] = f"T-{next_id}"
        rec["created_at"] = clock.strftime("%Y-%m-%dT%H:%M:%SZ")
        next_id += 1
        line = _ticket_json(rec).encode()
        if rec.get("_truncate"):
            line = line[: rng.randint(30, len(line) - 20)]
        elif rec.get("_bad_bytes"):
            # A Latin-1 e-acute and stray continuation bytes, as left behind by a bad export.
            bad = [b"Jos\xe9 here.", b"\x80\x81"][bad_k % 2]
            bad_k += 1
            line = line.replace(b'"question": "', b'"question": "' + bad + b" ", 1)
        lines.append(line)
    return b"\n".join(lines) + b"\n"


def _ticket_json(rec: dict) -> str:
    out = {"ticket_id": rec["ticket_id"], "question": rec["question"], "answer": rec["answer"]}
    if not rec.get("_drop_product"):
        out["product"] = rec["product"]
    out["created_at"] = rec["created_at"]
    return json.dumps(out, ensure_ascii=False)


# ---------------------------------------------------------------- support.mbox

AGENTS = [("Maya Chen", "maya.chen@acme.example"), ("Tom Berg", "tom.berg@acme.example"),
          ("Priya Nair", "priya.nair@acme.example")]
SUPPORT = ("Acme Support", "support@acme.example")
CUSTOMERS = [  # name, address, UTC offset in hours, phone for the signature
    ("Sam Lee", "sam.lee@example.org", -5, "+1 (555) 010-0172"),
    ("Jürgen Weiß", "j.weiss@example.net", 1, "+49 30 55501234"),
    ("Amelia Hughes", "amelia.hughes@example.com", 0, "+44 20 7946 0321"),
    ("Carlos Mendes", "carlos.mendes@example.net", -3, None),
    ("Aiko Tanaka", "aiko.t@example.com", 9, "+81 3-5555-0188"),
    ("Noah Williams", "noahw@example.org", -8, None),
    ("Fatima Zahra", "fatima.zahra@example.com", 1, "+33 1 70 18 42 11"),
    ("Liam O'Connor", "liam.oconnor@example.net", 0, "+353 1 555 0199"),
    ("Grace Kim", "grace.kim@example.org", -5, None),
    ("Ravi Patel", "ravi.patel@example.com", 5.5, "+91 98765 01234"),
    ("Emma Johansson", "emma.j@example.net", 1, None),
    ("Chloe Martin", "chloe.martin@example.com", 10, "+61 2 5550 9876"),
]
SUBJECTS = {
    "refund": ["Refund question", "Return request", "Can I send this back?", "Money back?"],
    "router_reset": ["Router reset", "Router not working", "How to reset router", "Router stuck"],
    "plug_pairing": ["Smart plug won't pair", "Pairing problem", "Plug not found in app",
                     "Smart plug setup"],
    "backup_restore": ["Restore deleted file", "Lost a file", "Need an old version back",
                       "Cloud Backup restore"],
    "password": ["Is this email from you?", "Suspicious password request", "Password question",
                 "Phishing?"],
    "warranty": ["Warranty", "Broken device", "Is this covered?", "Warranty claim"],
}
FOLLOWUPS = ["Thanks, that worked. One more thing: ", "Great, sorted! Also, ",
             "Thank you. While I have you: ", "That did it, thanks. Another question: "]
DAYS = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]

N_THREADS = 34
N_MULTI_TURN = 8


def _first(name: str) -> str:
    return name.split()[0]


def _wrap(text: str) -> str:
    return "\n".join(textwrap.fill(p, 72) if p else "" for p in text.split("\n"))


def _quote(body: str) -> str:
    return "\n".join(">" if not ln else (">" + ln if ln.startswith(">") else "> " + ln)
                     for ln in body.rstrip("\n").split("\n"))


def _human_date(dt: datetime) -> str:
    return f"{DAYS[dt.weekday()]}, {dt.day} {MONTHS[dt.month - 1]} {dt.year} at {dt:%H:%M}"


def _envelope_date(dt: datetime) -> str:
    u = dt.astimezone(timezone.utc)
    return f"{DAYS[u.weekday()]} {MONTHS[u.month - 1]} {u.day:2d} {u:%H:%M:%S} {u.year}"


def _msgid(rng: random.Random, domain: str) -> str:
    return f"<{rng.getrandbits(64):016x}.{rng.getrandbits(24):06x}@{domain}>"


def _customer_sig(rng: random.Random, cust: tuple, style: str) -> str:
    name, _, _, phone = cust
    if style == "phone":
        return "Sent from my phone"
    if style == "dashdash" and phone:
        return f"-- \n{name}\n{phone}"
    if phone and rng.random() < 0.4:
        return f"Best regards,\n{name}\n{phone}"
    return f"Thanks,\n{_first(name)}"


def _render(msg: dict) -> bytes:
    """One mbox entry: envelope line, headers, blank line, body, blank separator line."""
    hdr = [f"From: {msg['from']}", f"To: {msg['to']}", f"Subject: {msg['subject']}",
           f"Date: {format_datetime(msg['date'])}", f"Message-ID: {msg['id']}"]
    if msg.get("parent"):
        hdr += [f"In-Reply-To: {msg['parent']}", f"References: {' '.join(msg['refs'])}"]
    hdr.append("MIME-Version: 1.0")
    enc = msg.get("encoding", "8bit")
    body_text = msg["body"]
    if enc == "multipart":
        boundary = f"==acme-alt-{msg['id'][1:9]}=="
        html = "".join("<p>" + htmllib.escape(p).replace("\n", "<br>") + "</p>"
                       for p in body_text.split("\n\n") if p)
        hdr.append(f'Content-Type: multipart/alternative; boundary="{boundary}"')
        body = (f"This is a multi-part message in MIME format.\n\n--{boundary}\n"
                'Content-Type: text/plain; charset="utf-8"\nContent-Transfer-Encoding: 8bit\n\n'
                f"{body_text}\n--{boundary}\n"
                'Content-Type: text/html; charset="utf-8"\nContent-Transfer-Encoding: 8bit\n\n'
                f"<html><body>{html}</body></html>\n--{boundary}--\n").encode()
    else:
        hdr.append('Content-Type: text/plain; charset="utf-8"')
        hdr.append(f"Content-Transfer-Encoding: {enc}")
        if enc == "base64":
            body = base64.encodebytes(body_text.encode())
        elif enc == "quoted-printable":
            body = quopri.encodestring(body_text.encode())
        else:
            body = body_text.encode()
    # mboxo escaping: a body line starting with "From " would otherwise start a new message.
    body = re.sub(rb"(?m)^From ", b">From ", body)
    if not body.endswith(b"\n"):
        body += b"\n"
    env = f"From {msg['envelope']} {_envelope_date(msg['date'])}\n"
    return env.encode() + "\n".join(hdr).encode() + b"\n\n" + body + b"\n"


def build_mbox(rng: random.Random, pool: QuestionPool) -> bytes:
    intents = [INTENTS[i % len(INTENTS)] for i in range(N_THREADS)]
    rng.shuffle(intents)
    multi = set(rng.sample(range(N_THREADS), N_MULTI_TURN))
    # Fixed thread numbers for the special cases keep them easy to find in the file.
    special = {3: "base64", 8: "quoted-printable", 13: "multipart", 19: "from_line"}
    phone_sig = {5, 22}  # first messages signed "Sent from my phone"; follow-ups add more
    msgs: list[dict] = []
    start = datetime(2024, 2, 1, 9, 0, tzinfo=timezone.utc)
    for t, intent in enumerate(intents):
        cust = CUSTOMERS[t % len(CUSTOMERS)] if t != 8 else CUSTOMERS[1]
        ctz = timezone(timedelta(hours=cust[2]))
        agent = AGENTS[rng.randrange(len(AGENTS))] if t % 9 else SUPPORT
        sent = (start + timedelta(days=t * 3 + rng.randint(0, 2), minutes=rng.randint(0, 600),
                                  seconds=rng.randint(0, 59))).astimezone(ctz)
        q = _strip_opener(pool.take(intent)[0])
        q = q[0].upper() + q[1:]
        lead = "From what I can tell the device itself is fine.\n" if special.get(t) == "from_line" else ""
        greet = rng.choice(["Hi,", "Hello,", "Hi there,", "Dear Acme Support,"])
        sig = _customer_sig(rng, cust, "phone" if t in phone_sig else ("dashdash" if t % 7 == 2 else ""))
        if t == 8:  # German customer, non-ASCII in the body: sent quoted-printable
            sig = "Viele Grüße,\nJürgen Weiß"
        # The quoted-printable one keeps its long line, so the encoding has soft line breaks.
        body1 = f"{greet}\n\n{lead}{q if t == 8 else _wrap(q)}\n\n{sig}\n"
        subject = rng.choice(SUBJECTS[intent])
        m1 = {"from": formataddr((cust[0], cust[1]), "utf-8"), "envelope": cust[1],
              "to": formataddr(SUPPORT), "subject": subject, "date": sent,
              "id": _msgid(rng, cust[1].split("@")[1]), "body": body1}
        if special.get(t) in ("base64", "quoted-printable", "multipart"):
            m1["encoding"] = special[t]
        msgs.append(m1)
        prev, refs, intent_now = m1, [m1["id"]], intent
        turns = 2 if t in multi else 1
        for turn in range(turns):
            atz = timezone(timedelta(hours=1))
            replied = (prev["date"] + timedelta(minutes=rng.randint(20, 1800),
                                                seconds=rng.randint(0, 59))).astimezone(atz)
            # Bottom-posted: the quote comes first, the canonical answer, the signature last.
            abody = (f"On {_human_date(prev['date'])}, {_display_name(prev)} wrote:\n"
                     f"{_quote(prev['body'])}\n\n{CANONICAL[intent_now]['answer']}\n\n"
                     f"-- \n{_agent_sig(agent)}\n")
            a = {"from": formataddr(agent), "envelope": agent[1], "to": formataddr((cust[0], cust[1]), "utf-8"),
                 "subject": subject if subject.startswith("Re: ") else f"Re: {subject}",
                 "date": replied, "id": _msgid(rng, "acme.example"), "parent": prev["id"],
                 "refs": list(refs), "body": abody, "_agent": True}
            msgs.append(a)
            refs = refs + [a["id"]]
            if turn + 1 == turns:
                break
            intent_now = rng.choice([i for i in INTENTS if i != intent])
            q2, _ = pool.take(intent_now)
            fsent = (replied + timedelta(minutes=rng.randint(30, 2880),
                                         seconds=rng.randint(0, 59))).astimezone(ctz)
            fsig = "Sent from my phone" if t in sorted(multi)[:2] else f"Thanks again,\n{_first(cust[0])}"
            # Top-posted, the way phone mail clients reply: new text, signature, then the quote.
            q2 = _strip_opener(q2)
            fbody = (f"{_wrap(rng.choice(FOLLOWUPS) + q2[0].lower() + q2[1:])}\n\n{fsig}\n\n"
                     f"On {_human_date(replied)}, {agent[0]} wrote:\n{_quote(abody)}\n")
            f = {"from": formataddr((cust[0], cust[1]), "utf-8"), "envelope": cust[1],
                 "to": formataddr(agent), "subject": f"Re: {subject}", "date": fsent,
                 "id": _msgid(rng, cust[1].split("@")[1]), "parent": a["id"], "refs": list(refs),
                 "body": fbody}
            msgs.append(f)
            refs = refs + [f["id"]]
            prev = f
    msgs += BROKEN
    msgs.sort(key=lambda m: m["date"].astimezone(timezone.utc))
    return b"".join(m["raw"] if "raw" in m else _render(m) for m in msgs)


def _agent_sig(agent: tuple[str, str]) -> str:
    return "Acme Support\nhttps://acme.example/help" if agent == SUPPORT else f"{agent[0]}\nAcme Support"


def _strip_opener(q: str) -> str:
    for op in OPENERS:
        if op and q.lower().startswith(op.lower()):
            return q[len(op):]
    return q


def _display_name(msg: dict) -> str:
    for name, addr, *_ in CUSTOMERS + AGENTS + [SUPPORT]:
        if addr in msg["from"]:
            return name
    raise KeyError(msg["from"])


# Two entries real mailboxes contain: bytes that are not the declared charset, and a message whose
# header block was cut off (no Message-ID, no Date, no blank line before the body, bad base64).
BROKEN = [
    {"date": datetime(2024, 3, 19, 11, 4, 37, tzinfo=timezone.utc), "raw": (
        b"From olek.nowak@example.com Tue Mar 19 11:04:37 2024\n"
        b"From: Olek Nowak <olek.nowak@example.com>\n"
        b"To: Acme Support <support@acme.example>\n"
        b"Subject: Router problem\n"
        b"Date: Tue, 19 Mar 2024 12:04:37 +0100\n"
        b"Message-ID: <9f1c2e0b7a.olek@example.com>\n"
        b"MIME-Version: 1.0\n"
        b'Content-Type: text/plain; charset="utf-8"\n'
        b"Content-Transfer-Encoding: 8bit\n\n"
        b"Dzie\xf1 dobry,\n\nm\xf3j router \xb3\xb9czy si\xea co 5 minut \xff\xfe\x00 prosz\xea o pomoc.\n\n"
        b"Olek\n\n")},
    {"date": datetime(2024, 4, 16, 3, 12, 44, tzinfo=timezone.utc), "raw": (
        b"From MAILER-DAEMON Tue Apr 16 03:12:44 2024\n"
        b'From: "Kim Park" <kim.park@exam\n'
        b"Subject: smart plug wont pa\n"
        b'Content-Type: text/plain; charset="utf-8"\n'
        b"Content-Transfer-Encoding: base64\n"
        b"SGkgdGhlcmUsIG15IHNtYXJ0IHBsdWcgd29u\n"
        b"dCBwYWlyIHdpdGggdGhlIGFwcCBhbmQgSSBo=x\n\n")},
]


# ---------------------------------------------------------------- main


def _check_held_out(tickets: bytes, mbox: bytes) -> None:
    text = _norm(tickets.decode("utf-8", "replace") + mbox.decode("utf-8", "replace"))
    for p in HELD_OUT_PROMPTS.values():
        if _norm(p) in text:
            raise RuntimeError(f"held-out prompt leaked into the data: {p!r}")


def generate() -> dict[str, bytes]:
    rng = random.Random(SEED)
    pool = QuestionPool(rng, per_intent=75)
    tickets = build_tickets(rng, pool)
    mbox = build_mbox(rng, pool)
    _check_held_out(tickets, mbox)
    return {"tickets.jsonl": tickets, "support.mbox": mbox}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=HERE / "data", help="output folder (default: ./data)")
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    for name, data in generate().items():
        (args.out / name).write_bytes(data)
        print(f"wrote {args.out / name} ({len(data):,} bytes)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
