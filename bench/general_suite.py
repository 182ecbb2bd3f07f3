"""Choose the prompts of a built-in retention suite: those the base model passes robustly.

A retention suite measures what fine-tuning made the model forget. A prompt the base model passes
only by the luck of one greedy path measures noise instead: any small change of the weights (a
fine-tune that learnt nothing, even another batch padding) flips it. Measured on
SmolLM2-135M-Instruct with builtin:general-v1, whose prompts only had to pass greedily: of the 43
prompts the base passed in 4 of 4 sampled answers, a fine-tune with replay lost 3; of the 75 it
passed in fewer, it lost 30.

So a candidate is kept when the base model passes it
  1. greedily, with the deployed system prompt and without one (as retention runs it), and
  2. in at least --min-sampled of --samples sampled answers (temperature 0.7, top-p 0.9) with the
     deployed system prompt: a margin, not a coin toss.

    python bench/general_suite.py bench/general_candidates.jsonl --out suite.jsonl --report stability.jsonl

The candidates are a tests_from JSONL file (name, prompt, expect, tags). With one torch thread,
~0.8 s of CPU per answer of 48 tokens: the 539 candidates x (2 greedy + 4 sampled) is about 40 minutes.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

# Without a system prompt first: sampling, the costly part, only for what passed it greedily.
SYSTEMS = {"none": None, "deployed": "You are Acme's support assistant."}
SAMPLED_IN = "deployed"
TEMPERATURE, TOP_P, MAX_NEW_TOKENS, BATCH = 0.7, 0.9, 48, 8


def by_length(tests: list) -> list[list]:
    """Batches of prompts of similar length (less padding, and the batching retention uses)."""
    order = sorted(tests, key=lambda t: len(t.prompt))
    return [order[i:i + BATCH] for i in range(0, len(order), BATCH)]


def measure(candidates: Path, model_id: str, samples: int, report: Path | None) -> dict[str, dict]:
    """Per candidate and setting: greedy pass, and how many sampled answers pass."""
    import torch

    from llmspec.compiler.acceptance import load_tests_file
    from llmspec.runtime.acceptance.assertions import evaluate_test
    from llmspec.runtime.acceptance.runner import load_model
    from llmspec.runtime.models import resolve

    torch.set_num_threads(1)  # a shared CPU: more threads spin waiting for a core
    model = load_model(resolve.materialize(resolve.describe(model_id, Path("."))), device="cpu")
    found: dict[str, dict] = {}
    out = report.open("w") if report else None
    try:
        alive = None  # a candidate failed greedily in one setting is not tried further
        for setting, system in SYSTEMS.items():
            tests = load_tests_file(candidates, system=system, max_new_tokens=MAX_NEW_TOKENS)
            tests = [t for t in tests if alive is None or t.name in alive]
            for batch in by_length(tests):
                ids = [model.render(t.conversation()) for t in batch]
                greedy = [model.decode(a) for a in model.generate_ids(ids, MAX_NEW_TOKENS)]
                sampled = [[] for _ in batch]
                for k in range(samples if setting == SAMPLED_IN else 0):
                    answers = model.generate_ids(ids, MAX_NEW_TOKENS, temperature=TEMPERATURE, top_p=TOP_P,
                                                 seed=1000 + k)
                    for j, (t, a) in enumerate(zip(batch, answers)):
                        sampled[j].append(evaluate_test(t.expectations, model.decode(a), prompt=t.prompt).passed)
                for t, text, runs in zip(batch, greedy, sampled):
                    row = {"name": t.name, "setting": setting, "tag": t.tags[0] if t.tags else "",
                           "greedy": evaluate_test(t.expectations, text, prompt=t.prompt).passed,
                           "sampled": sum(runs), "samples": len(runs), "answer": text}
                    found.setdefault(t.name, {})[setting] = row
                    if out:
                        out.write(json.dumps(row, ensure_ascii=False) + "\n")
                        out.flush()
            alive = {n for n, s in found.items() if s.get(setting, {}).get("greedy")}
    finally:
        if out:
            out.close()
        model.close()
    return found


def robust(settings: dict[str, dict], min_sampled: int) -> bool:
    greedy = all(settings.get(s, {}).get("greedy") for s in SYSTEMS)
    return greedy and settings[SAMPLED_IN]["sampled"] >= min_sampled


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("candidates", type=Path)
    ap.add_argument("--out", type=Path, required=True, help="the chosen suite (tests_from JSONL)")
    ap.add_argument("--report", type=Path, help="every candidate's greedy and sampled results (JSONL)")
    ap.add_argument("--from-report", type=Path, help="choose from an earlier --report instead of running the model")
    ap.add_argument("--model", default="builtin:smollm2-135m-instruct")
    ap.add_argument("--samples", type=int, default=4)
    ap.add_argument("--min-sampled", type=int, default=4, help="sampled answers that must pass")
    args = ap.parse_args(argv)

    if args.from_report:
        found: dict[str, dict] = {}
        for line in args.from_report.read_text(encoding="utf-8").splitlines():
            row = json.loads(line)
            found.setdefault(row["name"], {})[row["setting"]] = row
    else:
        found = measure(args.candidates, args.model, args.samples, args.report)
    rows = [json.loads(line) for line in args.candidates.read_text(encoding="utf-8").splitlines() if line.strip()]
    kept = [r for r in rows if robust(found.get(r["name"], {}), args.min_sampled)]
    args.out.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in kept), encoding="utf-8")
    tried = Counter(r["tags"][0] for r in rows)
    chosen = Counter(r["tags"][0] for r in kept)
    greedy = Counter(r["tags"][0] for r in rows
                     if all(found.get(r["name"], {}).get(s, {}).get("greedy") for s in SYSTEMS))
    print(f"{'area':14}{'candidates':>12}{'greedy both':>13}{'robust':>8}")
    for tag in tried:
        print(f"{tag:14}{tried[tag]:>12}{greedy[tag]:>13}{chosen[tag]:>8}")
    print(f"{'all':14}{len(rows):>12}{sum(greedy.values()):>13}{len(kept):>8}   -> {args.out}", file=sys.stdout)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
