"""Does an unchanged project cost the same whatever its data size?

Times `llmspec plan` (what a no-op `apply` does before it says "Nothing to do") on the same
spec with a 40 KB source and with a ~170 MB source (400,000 lines), after one warm-up run has
filled the stat-keyed hash cache. Baseline: the small project. Prints both medians and the
ratio large/small (goal: ~1.0, i.e. no re-reading of unchanged data), plus the median no-op
`apply` of the bundled example for reference (goal: under a second).

    python bench/noop_speed.py [--lines 400000] [--runs 9]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SPEC = """\
llmspec: 1
project: noop-bench
base_model: {id: builtin:tiny}
sources:
  tickets: {path: data/tickets.jsonl, format: jsonl}
format:
  style: chat
  map:
    tickets: {user: question, assistant: answer}
training: {hardware: cpu}
"""


def make_project(root: Path, lines: int) -> Path:
    (root / "data").mkdir(parents=True)
    (root / ".llmspec").mkdir()  # a project that has been applied keeps its hash cache here
    (root / "llmspec.yaml").write_text(SPEC)
    row = b'{"question": "How do I reset my Acme Router to factory settings?", "answer": "Hold the reset button for 10 seconds until the light blinks orange."}\n'
    with open(root / "data/tickets.jsonl", "wb") as fh:
        for _ in range(lines):
            fh.write(row)
    return root


def timed(cmd: list[str], cwd: Path) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, cwd=cwd, check=True, capture_output=True)
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--lines", type=int, default=400_000)
    ap.add_argument("--runs", type=int, default=9)
    args = ap.parse_args()
    plan = [sys.executable, "-m", "llmspec.cli", "plan", "llmspec.yaml"]
    with tempfile.TemporaryDirectory() as tmp:
        small = make_project(Path(tmp) / "small", 300)
        large = make_project(Path(tmp) / "large", args.lines)
        size = (large / "data/tickets.jsonl").stat().st_size
        first = timed(plan, large)  # hashes the large file once
        timed(plan, small)
        t_small, t_large = [], []
        for _ in range(args.runs):  # alternate so load changes hit both
            t_small.append(timed(plan, small))
            t_large.append(timed(plan, large))
        s, l = statistics.median(t_small), statistics.median(t_large)
        print(f"source size: small 40 KB vs large {size / 2**20:.0f} MiB ({args.lines:,} lines)")
        print(f"first plan of the large project (hashes it): {first:.2f} s")
        print(f"plan, unchanged: small {s:.3f} s, large {l:.3f} s, ratio large/small {l / s:.2f} (goal ~1.0)")
    example = REPO / "examples/support-bot"
    if (example / ".llmspec/state.json").exists():
        apply = [sys.executable, "-m", "llmspec.cli", "apply", "llmspec.yaml", "--yes"]
        runs = [timed(apply, example) for _ in range(args.runs)]
        print(f"no-op apply of examples/support-bot: median {statistics.median(runs):.3f} s (goal < 1 s)")
    else:
        print("examples/support-bot has not been applied (make demo): no-op apply not timed")


if __name__ == "__main__":
    main()
