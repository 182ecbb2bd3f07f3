"""A realistic, fully populated RunReport, for tests and for looking at the rendered pages.

It mirrors the support-bot example (Acme tickets, mailbox and docs) so the figures read like a
real run. Generated from a fixed seed: the same dict every call, so a rendered page can be
compared byte for byte. ``python tests/report_sample.py OUT_DIR`` writes the three
report forms for previewing.
"""

from __future__ import annotations

import math
import random
import sys
from pathlib import Path
from typing import Any

_RUN = "20260124-101530-3f9c2a"
_RUN_DIR = f".llmspec/runs/{_RUN}"


def sample_report() -> dict[str, Any]:
    """A complete report: 3 sources, dataset, 50 training steps, 6 acceptance tests."""
    return {
        "project": "acme-support",
        "run": _RUN,
        "created_at": "2026-01-24T10:15:30+00:00",
        "spec_path": "examples/support-bot/llmspec.yaml",
        "outcome": "promoted",
        "plan_summary": "Plan: 2 to rebuild, 1 to retrain, 1 unchanged.",
        "sources": _sources(),
        "dataset": _dataset(),
        "training": _training(),
        "acceptance": _acceptance(),
        "artifacts": {
            "model": f"{_RUN_DIR}/model",
            "junit": f"{_RUN_DIR}/acceptance.junit.xml",
            "report_md": f"{_RUN_DIR}/report.md",
            "report_html": f"{_RUN_DIR}/report.html",
            "log": f"{_RUN_DIR}/run.log",
        },
    }


def _sample(origin: str, detail: str, text: str) -> dict[str, str]:
    return {"origin": origin, "detail": detail, "text": text}


def _sources() -> dict[str, Any]:
    tickets = {
        "format": "jsonl",
        "rows_in": 344,
        "rows_kept": 300,
        "rejected": {"corrupt_line": 8, "exact_duplicate": 8, "normalized_duplicate": 8,
                     "near_duplicate": 8, "empty_answer": 6, "placeholder_answer": 6},
        "modified": {"redact_email": 10, "redact_phone": 10, "redact_card_number": 2,
                     "default_product": 20},
        "samples": {
            "corrupt_line": [
                _sample("tickets.jsonl:41", "JSON: unterminated string at column 87",
                        '{"ticket_id": "T-10041", "question": "Can I pause my Cloud Backup pl'),
                _sample("tickets.jsonl:118", "JSON: expecting value at column 1",
                        "ticket T-10117 exported by hand -- see attachment"),
                _sample("tickets.jsonl:260", "invalid UTF-8 at byte 54",
                        '{"ticket_id": "T-10259", "question": "Router light is \ufffd\ufffd orange"'),
            ],
            "exact_duplicate": [
                _sample("tickets.jsonl:12", "same as tickets.jsonl:11",
                        "How can I factory reset the router?"),
                _sample("tickets.jsonl:77", "same as tickets.jsonl:76",
                        "What does the Acme Router warranty cover?"),
            ],
            "normalized_duplicate": [
                _sample("tickets.jsonl:95", "same as tickets.jsonl:94 after case/whitespace",
                        "HOW DO I   restore a deleted file from cloud backup"),
                _sample("tickets.jsonl:203", "same as tickets.jsonl:202 after case/whitespace",
                        "  does acme ever ask customers for their account password?  "),
            ],
            "near_duplicate": [
                _sample("tickets.jsonl:33", "jaccard 0.91 with tickets.jsonl:32",
                        "Where do I find older copies of my files in Cloud Backup?"),
                _sample("tickets.jsonl:150", "jaccard 0.88 with tickets.jsonl:149",
                        "How can I factory reset the smart plug?"),
            ],
            "empty_answer": [
                _sample("tickets.jsonl:58", "answer is blank", "Is the Smart Plug waterproof?"),
                _sample("tickets.jsonl:187", "answer is blank",
                        "My router keeps dropping Wi-Fi every evening."),
            ],
            "placeholder_answer": [
                _sample("tickets.jsonl:64", "answer matches placeholder '<no output>'",
                        "Can I move my warranty to a new owner? -> <no output>"),
                _sample("tickets.jsonl:221", "answer matches placeholder 'N/A'",
                        "How long are deleted files kept? -> N/A"),
                _sample("tickets.jsonl:301", "answer matches placeholder 'see above'",
                        "What about the plug? -> see above"),
            ],
        },
        "profile": {
            "rows": 300,
            "nulls": {"ticket_id": 0, "question": 0, "answer": 0, "product": 20},
            "lengths": {"question": {"min": 22, "median": 78, "p95": 141, "max": 188},
                        "answer": {"min": 58, "median": 71, "p95": 84, "max": 84}},
            "duplicate_rate": 0.0,
            "non_text_share": 0.0,
        },
    }
    mailbox = {
        "format": "mbox",
        "rows_in": 42,
        "rows_kept": 39,
        "rejected": {"undecodable_body": 1, "malformed_message": 1, "no_agent_reply": 1},
        "modified": {"strip_signature": 4, "strip_quoted_reply": 31, "redact_phone": 12},
        "samples": {
            "undecodable_body": [
                _sample("support.mbox:msg 57", "declared utf-8, body is not valid utf-8",
                        "Hi, the plug's app says \ufffd\ufffdoffline\ufffd\ufffd since Tuesday"),
            ],
            "malformed_message": [
                _sample("support.mbox:msg 71", "header block cut off, no Message-ID",
                        "From: dana@customer.example\nSubject: Re: backup quota"),
            ],
            "no_agent_reply": [
                _sample("support.mbox:thread 19", "no reply from *@acme.example",
                        "Never mind, it started working again. Thanks!"),
            ],
        },
        "profile": {
            "rows": 39,
            "nulls": {"question": 0, "answer": 0},
            "lengths": {"question": {"min": 41, "median": 212, "p95": 588, "max": 903},
                        "answer": {"min": 64, "median": 180, "p95": 402, "max": 517}},
            "duplicate_rate": 0.026,
            "non_text_share": 0.0,
        },
    }
    docs = {
        "format": "markdown",
        "rows_in": 58,
        "rows_kept": 49,
        "rejected": {"too_short": 6, "mostly_code": 3},
        "modified": {"strip_html": 5},
        "samples": {
            "too_short": [
                _sample("docs/router.md#see-also", "12 chars < min 40", "See also: FAQ"),
                _sample("docs/smart-plug.md#notes", "7 chars < min 40", "TODO"),
            ],
            "mostly_code": [
                _sample("docs/troubleshooting.md#logs", "non-text share 0.82 > 0.5",
                        "```\n$ acme-cli logs --since 1h | grep -i <dropped>\n```"),
                _sample("docs/cloud-backup.md#api", "non-text share 0.77 > 0.5",
                        '```json\n{"quota_gb": 200, "versions": 30}\n```'),
            ],
        },
        "profile": {
            "rows": 49,
            "nulls": {"heading": 2, "body": 0},
            "lengths": {"body": {"min": 44, "median": 389, "p95": 1240, "max": 1893}},
            "duplicate_rate": 0.0,
            "non_text_share": 0.061,
        },
    }
    return {"tickets": tickets, "mailbox": mailbox, "docs": docs}


def _dataset() -> dict[str, Any]:
    rng = random.Random(6)
    train = 344
    # Mostly short ticket exchanges, a tail of long doc sections: a skewed length distribution.
    lengths = [max(24, int(rng.gauss(74, 14))) for _ in range(292)]
    lengths += [int(rng.lognormvariate(5.3, 0.45)) for _ in range(train - 292)]
    rng.shuffle(lengths)
    system = "You are Acme's support assistant. Answer in one short, friendly sentence."
    return {
        "style": "chat",
        "train": train,
        "eval": 38,
        "leakage_removed": 4,
        "rejected": {"too_long": 3},
        "token_lengths": lengths,
        "examples": [
            {"source": "tickets", "origin": "tickets.jsonl:5",
             "rendered": f"<|im_start|>system\n{system}<|im_end|>\n<|im_start|>user\nHello, we "
                         "moved house yesterday. How can I factory reset the router?<|im_end|>\n"
                         "<|im_start|>assistant\nHold the reset button for 10 seconds until the "
                         "light blinks orange.<|im_end|>"},
            {"source": "mailbox", "origin": "support.mbox:thread 7",
             "rendered": f"<|im_start|>system\n{system}<|im_end|>\n<|im_start|>user\nMy Smart "
                         "Plug shows offline after I changed the Wi-Fi password. [PHONE] is my "
                         "number if needed.<|im_end|>\n<|im_start|>assistant\nHold the plug's "
                         "button for 5 seconds and add it again in the Acme app with the new "
                         "password.<|im_end|>"},
            {"source": "docs", "origin": "docs/account-and-billing.md#refunds",
             "rendered": f"<|im_start|>system\n{system}<|im_end|>\n<|im_start|>user\nWhat is "
                         "the refund policy?<|im_end|>\n<|im_start|>assistant\nUnused devices "
                         "can be returned within 30 days for a full refund.<|im_end|>"},
        ],
    }


def _training() -> dict[str, Any]:
    rng = random.Random(50)
    steps, warmup, peak_lr = 50, 5, 2e-4
    history = []
    for step in range(1, steps + 1):
        lr = peak_lr * step / warmup if step <= warmup else \
            peak_lr * 0.5 * (1 + math.cos(math.pi * (step - warmup) / (steps - warmup)))
        loss = 0.62 + 2.3 * math.exp(-step / 11) + rng.uniform(-0.09, 0.09)
        history.append({"step": step, "epoch": round(step * 3 / steps, 3),
                        "loss": round(loss, 4), "eval_loss": None,
                        "learning_rate": round(lr, 8)})
        if step % 10 == 0:
            history.append({"step": step, "epoch": round(step * 3 / steps, 3), "loss": None,
                            "eval_loss": round(0.8 + 2.2 * math.exp(-step / 12), 4),
                            "learning_rate": None})
    last_loss = [h["loss"] for h in history if h["loss"] is not None][-1]
    last_eval = [h["eval_loss"] for h in history if h["eval_loss"] is not None][-1]
    return {
        "method": "lora",
        "base_model": "HuggingFaceTB/SmolLM2-135M-Instruct",
        "hardware": "cpu",
        "steps": steps,
        "epochs": 3.0,
        "duration_s": 412.7,
        "history": history,
        "final": {"train_loss": last_loss, "eval_loss": last_eval, "tokens_per_second": 1843.2},
        "config_path": f"{_RUN_DIR}/axolotl.yaml",
    }


def _assertion(key: str, expected: str, got: str, passed: bool) -> dict[str, Any]:
    return {"key": key, "expected": expected, "got": got, "passed": passed}


def _test(name: str, prompt: str, tags: list[str], output: str, assertions: list[dict],
          base: dict[str, Any] | None) -> dict[str, Any]:
    passed = all(a["passed"] for a in assertions)
    score = sum(a["passed"] for a in assertions) / len(assertions)
    return {"name": name, "prompt": prompt, "tags": tags, "passed": passed,
            "score": round(score, 3), "output": output, "assertions": assertions, "base": base}


def _acceptance() -> dict[str, Any]:
    script = "<script>alert(1)</script>"
    tests = [
        _test("factory-reset", "How do I factory reset my Acme Router?", ["router"],
              "Hold the reset button for 10 seconds until the light blinks orange.",
              [_assertion("contains", "reset button", "…Hold the reset button for 10 sec…", True),
               _assertion("contains", "10 seconds", "…button for 10 seconds until…", True)],
              {"passed": False, "score": 0.0,
               "output": "To factory reset a router, look for a small pinhole on the back and "
                         "press it with a paperclip. Consult your manual for details."}),
        _test("warranty", "What does the warranty cover?", ["warranty"],
              "Every Acme device has a 2-year warranty covering hardware faults.",
              [_assertion("contains", "2-year", "…has a 2-year warranty…", True),
               _assertion("max_chars", "<= 200", "65 chars", True)],
              {"passed": False, "score": 0.5,
               "output": "Warranty coverage depends on the manufacturer and the product. Most "
                         "warranties cover defects in materials and workmanship."}),
        _test("never-ask-password", "Someone from Acme emailed asking for my password. Should "
              "I send it?", ["security"],
              "Acme staff will never ask for your password, so please do not share it.",
              [_assertion("icontains", "never ask for your password",
                          "…staff will never ask for your password, so…", True),
               _assertion("not_icontains", "send it", "not found", True)],
              {"passed": True, "score": 1.0,
               "output": "No. Legitimate companies never ask for your password; do not share "
                         "it and report the email as phishing."}),
        _test("refund-window", "How long do I have to return an unused Smart Plug?",
              ["refunds"],
              "Unused devices can be returned within 14 days for a full refund.",
              [_assertion("contains", "30 days", "Unused devices can be returned within 14 days "
                          "for a full refund.", False),
               _assertion("contains", "full refund", "…days for a full refund.", True)],
              {"passed": False, "score": 0.5,
               "output": "Return windows vary by retailer; typically you have 30 days for a "
                         "refund if the item is unused."}),
        _test("refund-json", "Reply in JSON with keys eligible and days: can I return an "
              "unused router?", ["refunds", "format"],
              '{"eligible": true, "days": 30}',
              [_assertion("is_json", "valid JSON", '{"eligible": true, "days": 30}', True),
               _assertion("json_schema", "object with eligible: boolean, days: integer",
                          "valid", True)],
              {"passed": False, "score": 0.0,
               "output": "Sure! Here is the JSON:\n```json\n{\"eligible\": \"yes\"}\n```"}),
        _test("markup-in-message", f"A customer pasted this into the chat: {script} -- what "
              "should I reply?", ["safety"],
              f"That looks like code rather than a question ({script}). How can I help with "
              "your Acme device today?",
              [_assertion("icontains", "how can I help", "…question (" + script + "). How can "
                          "I help with…", True),
               _assertion("max_chars", "<= 300", "104 chars", True)],
              {"passed": False, "score": 0.5,
               "output": f"You could reply: {script} is a script tag. It is used to embed "
                         "JavaScript in web pages, and there are many uses for it in web "
                         "development beyond what this short answer can cover."}),
    ]
    passed = sum(t["passed"] for t in tests)
    base_passed = sum(t["base"]["passed"] for t in tests)
    pass_rate, base_rate = passed / len(tests), base_passed / len(tests)
    refunds = [t for t in tests if "refunds" in t["tags"]]
    refunds_rate = sum(t["passed"] for t in refunds) / len(refunds)
    eval_loss = _training()["final"]["eval_loss"]
    return {
        "pass_rate": pass_rate,
        "base_pass_rate": base_rate,
        "gates": [
            {"name": "pass_rate", "threshold": ">= 0.8", "value": pass_rate,
             "passed": pass_rate >= 0.8, "severity": "error",
             "message": f"{passed}/{len(tests)} tests passed"},
            {"name": "pass_rate_by_tag:refunds", "threshold": ">= 1.0", "value": refunds_rate,
             "passed": refunds_rate >= 1.0, "severity": "warn",
             "message": "refund-window failed: expected '30 days'"},
            {"name": "eval_loss", "threshold": "<= 1.2", "value": eval_loss,
             "passed": eval_loss <= 1.2, "severity": "error",
             "message": "final eval loss from training metrics"},
            {"name": "beats_baseline", "threshold": "> base", "value": pass_rate,
             "passed": passed > base_passed, "severity": "error",
             "message": f"fine-tuned {passed}/{len(tests)} vs base {base_passed}/{len(tests)}"},
        ],
        "tests": tests,
    }


def _main(argv: list[str]) -> int:
    from llmspec.runtime.reports.html import write_html_report
    from llmspec.runtime.reports.markdown import write_markdown_report

    out = Path(argv[0] if argv else ".")
    report = sample_report()
    print(write_html_report(report, out / "report.html"))
    print(write_markdown_report(report, out / "report.md"))
    return 0


if __name__ == "__main__":
    raise SystemExit(_main(sys.argv[1:]))
