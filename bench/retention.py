"""Does replay keep what the base model knew, and at what cost? Measured through the product.

On the real model (builtin:smollm2-135m-instruct) and Acme's support tickets (the data and the 12
held-out domain tests of examples/support-bot-smollm2), this writes one spec folder per variant
under a temporary folder, runs `llmspec apply` on each, and reads the run's report:

- base:          the base model, as the acceptance stage measures it beside every fine-tuned run
                 (same prompts, same system prompt and chat template; from the same runs)
- tuned:         the example with `training.replay` removed
- tuned+replay:  `training.replay: {from: base_model, fraction: F, prompts: builtin:general-replay-v1}`

For each it prints the domain pass rate, the general retention pass rate (builtin:general-v2) and
its ratio to the base's, the drift (nats/token), the training time (wall and the trainer's CPU) and
the wall and CPU time of the whole apply. Retention gates are set to `warn` so a run that forgets
still reports its figures. Goal: tuned+replay passes >= 90% of the domain tests and keeps >= 95% of
the base's general pass rate. With --repeat N each figure is the median [min-max] of N runs.

    python bench/retention.py                         # tuned and tuned+replay, the example's settings
    python bench/retention.py --variants tuned --steps 12 --lr 5e-4 --rank 4
    python bench/retention.py --fraction 0.4 --repeat 2 --keep /tmp/retention-bench

Torch runs with --threads threads (default 1: on a machine shared with other work, more threads
spin waiting for a core and cost CPU without saving wall time).
"""

from __future__ import annotations

import argparse
import json
import os
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
OFFLINE = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "WANDB_MODE": "disabled", "DO_NOT_TRACK": "1",
           "AXOLOTL_DO_NOT_TRACK": "1", "TOKENIZERS_PARALLELISM": "false"}
VARIANTS = ("tuned", "tuned+replay")
GOAL_DOMAIN, GOAL_KEPT = 0.90, 0.95


def write_project(root: Path, name: str, args: argparse.Namespace, *, replay: bool) -> Path:
    """The example with this variant's settings, in its own folder (no state shared between runs)."""
    from ruamel.yaml import YAML

    project = root / name
    shutil.copytree(EXAMPLE, project, ignore=shutil.ignore_patterns(".llmspec", "llmspec.lock", "README.md"))
    yaml = YAML()
    spec = yaml.load((project / "llmspec.yaml").read_text())
    training = spec["training"]
    if replay:  # the example's own replay settings, with the bench's overrides
        shipped = training.get("replay") or {}
        fraction = args.fraction if args.fraction is not None else shipped.get("fraction", 0.25)
        training["replay"] = {**shipped, "from": "base_model", "fraction": fraction, "prompts": args.prompts}
    else:
        training.pop("replay", None)
    if args.steps is not None:
        training["max_steps"] = args.steps
    if args.lr is not None:
        training["learning_rate"] = args.lr
    if args.rank is not None:
        training["lora"]["r"] = args.rank
        training["lora"]["alpha"] = 2 * args.rank
    if args.target:
        training["lora"]["target"] = args.target.split(",")
    if getattr(args, "seed", None) is not None:
        training["seed"] = args.seed
    retention = spec["acceptance"].get("retention")
    if not isinstance(retention, dict):
        retention = spec["acceptance"]["retention"] = {"suite": "builtin:general-v2"}
    if getattr(args, "suite", None):
        retention["suite"] = args.suite
    retention["severity"] = "warn"  # the figures of a run that forgets are the point here
    with (project / "llmspec.yaml").open("w") as fh:
        yaml.dump(spec, fh)
    return project


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def apply(project: Path, threads: int) -> dict:
    env = {**os.environ, **OFFLINE, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    cpu0, t0 = children_cpu(), time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "llmspec.cli", "apply", "llmspec.yaml", "--yes"], cwd=project,
                          capture_output=True, text=True, env=env)
    wall, cpu = time.perf_counter() - t0, children_cpu() - cpu0
    (project / "apply.log").write_text(proc.stdout + proc.stderr)
    if proc.returncode not in (0, 3):
        raise SystemExit(f"apply failed in {project} (exit {proc.returncode}); see {project / 'apply.log'}:\n"
                         + (proc.stdout + proc.stderr)[-3000:])
    state = json.loads((project / ".llmspec/state.json").read_text())
    run = state["runs"][-1]
    run_dir = project / ".llmspec/runs" / run["run"]
    report = json.loads((run_dir / "report.json").read_text())
    acc = report["acceptance"]
    ret = acc.get("retention") or {}
    if not ret.get("enabled"):
        raise SystemExit(f"retention did not run in {project}: {ret.get('reason') or ret}")
    training = report.get("training") or {}
    return {"exit": proc.returncode, "outcome": run.get("outcome"),
            "domain": acc["pass_rate"], "domain_base": acc.get("base_pass_rate"),
            "general": ret["pass_rate"], "general_base": ret["base_pass_rate"], "drift": ret["drift"]["delta"],
            "by_tag": {t: (v["base_passed"], v["passed"], v["tests"]) for t, v in ret["by_tag"].items()},
            "lost": [x["name"] for x in ret.get("lost", [])],
            "train_wall_s": training.get("duration_s"), "train_cpu_s": training.get("cpu_s"),
            "steps": training.get("steps"), "eval_loss": (training.get("final") or {}).get("eval_loss"),
            "replay_rows": replay_rows(run_dir), "apply_wall_s": wall, "apply_cpu_s": cpu}


def replay_rows(run_dir: Path) -> int:
    """Replay examples mixed into the training set, from the dataset stage's funnel (0: none)."""
    try:
        dataset = json.loads((run_dir / "dataset" / "dataset.json").read_text())
    except (OSError, ValueError):
        return 0
    funnel = (dataset.get("per_source") or {}).get("replay") or {}
    return int((dataset.get("replay") or {}).get("examples") or funnel.get("examples") or 0)


def span(values: list, fmt: str) -> str:
    values = [v for v in values if v is not None]
    if not values:
        return "-"
    if len(values) == 1:
        return format(values[0], fmt)
    return f"{format(statistics.median(values), fmt)} [{format(min(values), fmt)}-{format(max(values), fmt)}]"


def table(results: dict[str, list[dict]]) -> list[str]:
    runs_all = [r for runs in results.values() for r in runs]
    head = (f"{'':14}{'domain':>16}{'general':>22}{'kept':>18}{'drift':>22}{'train wall s':>16}"
            f"{'train CPU s':>16}{'apply wall s':>16}{'apply CPU s':>16}")
    lines = [head, (f"{'base':14}{span([r['domain_base'] for r in runs_all], '.2f'):>16}"
                    f"{span([r['general_base'] for r in runs_all], '.3f'):>22}{'1.00':>18}{'0':>22}"
                    + f"{'-':>16}" * 4)]
    for name, runs in results.items():
        if not runs:
            continue
        kept = [r["general"] / r["general_base"] for r in runs if r["general_base"]]
        lines.append(f"{name:14}{span([r['domain'] for r in runs], '.2f'):>16}"
                     f"{span([r['general'] for r in runs], '.3f'):>22}{span(kept, '.3f'):>18}"
                     f"{span([r['drift'] for r in runs], '+.3f'):>22}{span([r['train_wall_s'] for r in runs], '.0f'):>16}"
                     f"{span([r['train_cpu_s'] for r in runs], '.0f'):>16}{span([r['apply_wall_s'] for r in runs], '.0f'):>16}"
                     f"{span([r['apply_cpu_s'] for r in runs], '.0f'):>16}")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--variants", default=",".join(VARIANTS), help=f"comma-separated, of {', '.join(VARIANTS)}")
    ap.add_argument("--steps", type=int, help="training.max_steps (default: the example's)")
    ap.add_argument("--lr", type=float, help="training.learning_rate (default: the example's)")
    ap.add_argument("--rank", type=int, help="training.lora.r, with alpha = 2r (default: the example's)")
    ap.add_argument("--target", help="training.lora.target, comma-separated (default: all linear layers)")
    ap.add_argument("--fraction", type=float, help="training.replay.fraction for tuned+replay (default: the example's)")
    ap.add_argument("--prompts", default="builtin:general-replay-v1", help="training.replay.prompts")
    ap.add_argument("--seed", type=int, help="training.seed (default: the example's)")
    ap.add_argument("--suite", help="acceptance.retention.suite (default: the example's, builtin:general-v2)")
    ap.add_argument("--repeat", type=int, default=1, help="runs per variant (figures: median [min-max])")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (OMP_NUM_THREADS) in each apply")
    ap.add_argument("--keep", type=Path, help="write the projects here and keep them")
    ap.add_argument("--json", type=Path, help="also write every run's figures to this file")
    args = ap.parse_args()
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = set(variants) - set(VARIANTS)
    if unknown:
        ap.error(f"unknown variant(s) {', '.join(sorted(unknown))}; choose from {', '.join(VARIANTS)}")
    root = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="llmspec-retention-bench-"))
    root.mkdir(parents=True, exist_ok=True)
    results: dict[str, list[dict]] = {v: [] for v in variants}
    for rep in range(args.repeat):
        for name in variants:
            replay = name == "tuned+replay"
            project = write_project(root, f"{name.replace('+', '-')}-{rep + 1}", args, replay=replay)
            figures = apply(project, args.threads)
            if replay and not figures["replay_rows"]:
                print(f"  {name} run {rep + 1}: this llmspec did not mix any replay example in "
                      f"(see {project / 'apply.log'}); the row is not a replay result", flush=True)
            results[name].append(figures)
            print(f"  {name} run {rep + 1}: {json.dumps(figures)}", flush=True)
    settings = {k: getattr(args, k) for k in ("steps", "lr", "rank", "target", "fraction", "threads")}
    print(f"\nbase vs fine-tuned, {EXAMPLE.name} data, builtin:smollm2-135m-instruct on the CPU; "
          f"{args.repeat} run(s) each; settings {json.dumps(settings)} (None: the example's)")
    print("\n".join(table(results)))
    print("domain: pass rate on the 12 held-out Acme tests; general: the retention suite's pass rate; kept: general / "
          "base general; drift: mean NLL of the base's own answers, tuned minus base (nats/token)")
    if "tuned+replay" in results:
        best = results["tuned+replay"]
        met = all(r["replay_rows"] and r["domain"] >= GOAL_DOMAIN and r["general"] >= GOAL_KEPT * r["general_base"]
                  for r in best)
        print(f"goal (tuned+replay: domain >= {GOAL_DOMAIN:.2f}, general >= {GOAL_KEPT:.2f} x base): "
              f"{'met' if met else 'NOT met'}")
    if args.json:
        args.json.write_text(json.dumps({"settings": settings, "results": results}, indent=1))
    if args.keep:
        print(f"projects kept in {root}")
    else:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
