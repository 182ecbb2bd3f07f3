"""How fast is `llmspec validate` next to a plain JSON Schema check of the same file?

Both run as the pre-commit hook would: a fresh process per check, timed by wall clock.
`check-jsonschema --schemafile spec/llmspec.schema.json` checks only the shape; llmspec also
resolves recipes, checks templates, regexes, paths, secrets and cross-field rules. Runs
alternate (llmspec, check-jsonschema, llmspec, ...) so machine noise hits both alike; after
warm-up runs, the median of N runs each is compared.

    .venv/bin/python bench/validate_speed.py [--runs 15] [--spec examples/support-bot/llmspec.yaml]

Goal: ratio llmspec / check-jsonschema <= 1.0.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def tool(name: str) -> str:
    found = BIN / name
    if found.exists():
        return str(found)
    found = shutil.which(name)
    if found is None:
        sys.exit(f"{name} is not installed: pip install -e '.[dev]'")
    return found


def timed(cmd: list[str]) -> float:
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr.decode(errors='replace')}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--spec", default="examples/support-bot/llmspec.yaml")
    args = parser.parse_args()

    schema = ROOT / "spec" / "llmspec.schema.json"
    commands = {
        "llmspec validate": [tool("llmspec"), "validate", args.spec],
        "check-jsonschema": [tool("check-jsonschema"), "--schemafile", str(schema), args.spec],
    }
    for _ in range(args.warmup):  # fill the OS page cache and Python's bytecode cache for both
        for cmd in commands.values():
            timed(cmd)
    times: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(args.runs):
        for name, cmd in commands.items():
            times[name].append(timed(cmd))

    medians = {name: statistics.median(t) for name, t in times.items()}
    print(f"{args.spec}, {args.runs} alternating runs each, wall clock per process:")
    for name, t in times.items():
        print(f"  {name:18} median {medians[name] * 1000:7.1f} ms   "
              f"(min {min(t) * 1000:.1f}, max {max(t) * 1000:.1f})")
    ratio = medians["llmspec validate"] / medians["check-jsonschema"]
    print(f"  ratio llmspec / check-jsonschema = {ratio:.2f}  (goal <= 1.0: {'met' if ratio <= 1.0 else 'NOT met'})")


if __name__ == "__main__":
    main()
