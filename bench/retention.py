"""Does replay keep what the base model knew, at what cost?

On the real model (builtin:smollm2-135m-instruct) and the example examples/support-bot-smollm2
(Acme's support tickets, 12 held-out domain tests, retention on builtin:general-v1), applies:

- tuned:        the example without replay
- tuned+replay: the example as shipped (training.replay from base_model, 25% of the training set)

and prints, beside the base model (measured in the same runs, on the same prompts): the domain
pass rate, the general retention pass rate and its ratio to the base's, the drift, the training
time, and the wall and CPU time of each whole apply. Retention gates are set to `warn` here so a
run that forgets still reports its figures. Goal: tuned+replay passes >= 90% of the domain tests
and keeps >= 95% of the base's general pass rate.

    python bench/retention.py [--steps N] [--repeat N] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "support-bot-smollm2"
ENV = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "WANDB_MODE": "disabled", "DO_NOT_TRACK": "1",
       "AXOLOTL_DO_NOT_TRACK": "1", "TOKENIZERS_PARALLELISM": "false"}


def variant(root: Path, name: str, *, replay: bool, steps: int | None) -> Path:
    project = root / name
    shutil.copytree(EXAMPLE, project, ignore=shutil.ignore_patterns(".llmspec", "llmspec.lock"))
    spec = (project / "llmspec.yaml").read_text()
    if not replay:
        spec = re.sub(r"\n  replay:\n(    .*\n)+", "\n", spec)
    if steps is not None:
        spec = re.sub(r"max_steps: \d+", f"max_steps: {steps}", spec)
    spec = spec.replace("    max_drop: 0.05\n", "    max_drop: 0.05\n    severity: warn\n")
    (project / "llmspec.yaml").write_text(spec)
    return project


def apply(project: Path) -> dict:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "llmspec.cli", "apply", "llmspec.yaml", "--yes"], cwd=project,
                          capture_output=True, text=True, env={**os.environ, **ENV})
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if proc.returncode not in (0, 3):
        raise SystemExit(f"apply failed in {project} ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    state = json.loads((project / ".llmspec/state.json").read_text())
    run = state["runs"][-1]["run"]
    report = json.loads((project / ".llmspec/runs" / run / "report.json").read_text())
    acc, ret = report["acceptance"], report["acceptance"]["retention"]
    return {"domain": acc["pass_rate"], "domain_base": acc["base_pass_rate"], "general": ret["pass_rate"],
            "general_base": ret["base_pass_rate"], "drift": ret["drift"]["delta"],
            "train_s": report.get("training", {}).get("duration_s"), "wall_s": wall, "cpu_s": cpu,
            "replay": (report.get("dataset") or {}).get("per_source", {}).get("replay"),
            "outcome": state["runs"][-1]["outcome"], "lost": [x["name"] for x in ret.get("lost", [])]}


def span(values: list[float], fmt: str) -> str:
    if len(values) == 1:
        return format(values[0], fmt)
    return f"{format(statistics.median(values), fmt)} [{format(min(values), fmt)}-{format(max(values), fmt)}]"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=None, help="override the example's max_steps")
    ap.add_argument("--repeat", type=int, default=1, help="runs per variant (figures show median [min-max])")
    ap.add_argument("--keep", type=Path, default=None, help="keep the projects here")
    args = ap.parse_args()
    root = Path(args.keep or tempfile.mkdtemp(prefix="llmspec-retention-bench-"))
    root.mkdir(parents=True, exist_ok=True)
    results: dict[str, list[dict]] = {"tuned": [], "tuned+replay": []}
    for rep in range(args.repeat):
        for name, replay in (("tuned", False), ("tuned+replay", True)):
            project = variant(root, f"{name.replace('+', '-')}-{rep}", replay=replay, steps=args.steps)
            results[name].append(apply(project))
            print(f"  {name} run {rep + 1}: {json.dumps(results[name][-1])}", flush=True)
    base = results["tuned"]
    print(f"\nbase model vs fine-tuned on {EXAMPLE.name} (steps: {args.steps or 'as shipped'}, "
          f"{args.repeat} run(s) each; CPU threads: {os.cpu_count()})")
    print(f"{'':14}{'domain':>10}{'general':>10}{'kept':>9}{'drift':>9}{'train s':>10}{'apply wall s':>14}"
          f"{'apply CPU s':>13}")
    print(f"{'base':14}{span([r['domain_base'] for r in base], '.2f'):>10}"
          f"{span([r['general_base'] for r in base], '.3f'):>10}{'1.00':>9}{'0':>9}{'-':>10}{'-':>14}{'-':>13}")
    for name, runs in results.items():
        kept = [r["general"] / r["general_base"] for r in runs if r["general_base"]]
        print(f"{name:14}{span([r['domain'] for r in runs], '.2f'):>10}{span([r['general'] for r in runs], '.3f'):>10}"
              f"{span(kept, '.2f'):>9}{span([r['drift'] for r in runs], '+.3f'):>9}"
              f"{span([r['train_s'] or 0 for r in runs], '.0f'):>10}{span([r['wall_s'] for r in runs], '.0f'):>14}"
              f"{span([r['cpu_s'] for r in runs], '.0f'):>13}")
    best = results["tuned+replay"]
    ok = all(r["domain"] >= 0.9 and r["general"] >= 0.95 * r["general_base"] for r in best)
    print(f"\ngoal (tuned+replay: domain >= 0.90, general >= 0.95 x base): {'met' if ok else 'NOT met'}")
    print(f"projects kept in {root}" if args.keep else "")


if __name__ == "__main__":
    main()
