"""`llmspec serve` under load against its baseline: the same model's ``generate`` called
in-process in a loop, measured in the same run.

For concurrency 1, 8 and 32: requests/s and p50/p95 latency over HTTP (chat completions, greedy,
the same prompts and token budget as the loop), wall time beside the server's CPU time, and the
range over several runs. Prints the overhead ratio at concurrency 1 (goal: the server adds <= 10%)
and the throughput ratio at 8 (goal: above 1, by batching).

The concurrency-1 overhead is also measured paired: each HTTP request right after (or before,
alternating) the loop's generate of the same prompt, so that a shared machine's load, which drifts
over seconds, weighs on both sides of each ratio alike.

    python bench/serve_load.py                       # applies a builtin:tiny project in a temp dir
    python bench/serve_load.py --spec path/llmspec.yaml --runs 3 --requests 64
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
OFFLINE = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "WANDB_MODE": "disabled", "DO_NOT_TRACK": "1",
           "AXOLOTL_DO_NOT_TRACK": "1", "TOKENIZERS_PARALLELISM": "false"}
os.environ.update(OFFLINE)
QUESTIONS = ["How do I reset my router?", "Where is my invoice?", "My smart plug is offline.",
             "Can I return the camera after 20 days?", "How do I change my password?",
             "The app crashes when I open settings.", "Do you ship to Canada?", "What is the warranty?"]


def spec_path(arg: str | None) -> Path:
    if arg:
        return Path(arg).resolve()
    from deploy_project import applied_project

    tmp = Path(tempfile.mkdtemp(prefix="serve-bench-"))
    print(f"applying a builtin:tiny project in {tmp} ...", flush=True)
    return applied_project(tmp) / "llmspec.yaml"


def percentile(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


def questions(requests: int) -> list[str]:
    return (QUESTIONS * (requests // len(QUESTIONS) + 1))[:requests]


def load_model(spec: Path):
    """The served run's model in this process, and a function rendering a question as serve does."""
    from llmspec.api import load_spec
    from llmspec.runtime.serve.target import resolve_run

    run = resolve_run(load_spec(spec))
    model = run.load(device="cpu")
    head = [{"role": "system", "content": run.system}] if run.system else []
    return model, lambda q: model.render(head + [{"role": "user", "content": q}])


def baseline(spec: Path, requests: int, max_tokens: int) -> dict:
    """The model's generate in a loop, one request at a time, in this process."""
    model, render = load_model(spec)
    prompts = [render(q) for q in questions(requests)]
    with model.threads():
        model.generate_ids([prompts[0]], max_tokens)  # warm-up
        latencies = []
        wall0, cpu0 = time.perf_counter(), time.process_time()
        for p in prompts:
            t = time.perf_counter()
            model.generate_ids([p], max_tokens)
            latencies.append(time.perf_counter() - t)
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    model.close()
    return {"rps": requests / wall, "p50": percentile(latencies, 0.5), "p95": percentile(latencies, 0.95),
            "wall": wall, "cpu": cpu}


class Server:
    def __init__(self, spec: Path, max_batch: int):
        cmd = [sys.executable, "-m", "llmspec.cli", "serve", str(spec), "--port", "0", "--max-batch", str(max_batch),
               "--max-queue", "256"]
        self.proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, env={**os.environ, **OFFLINE})
        self.url = None
        for line in self.proc.stderr:
            found = re.search(r"Listening on (http://\S+)", line)
            if found:
                self.url = found.group(1)
                break
        if self.url is None:
            raise SystemExit("llmspec serve did not start")
        threading.Thread(target=self.proc.stderr.read, daemon=True).start()

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(60)


def load(server: Server, concurrency: int, requests: int, max_tokens: int) -> dict:
    import httpx

    client = httpx.Client(base_url=server.url + "/v1", timeout=600,
                          limits=httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency))
    bodies = [{"messages": [{"role": "user", "content": q}], "max_tokens": max_tokens, "temperature": 0}
              for q in questions(requests)]
    client.post("/chat/completions", json=bodies[0]).raise_for_status()  # warm-up

    def one(body):
        t = time.perf_counter()
        client.post("/chat/completions", json=body).raise_for_status()
        return time.perf_counter() - t

    cpu0, wall0 = server.cpu_seconds(), time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        latencies = list(pool.map(one, bodies))
    wall, cpu = time.perf_counter() - wall0, server.cpu_seconds() - cpu0
    client.close()
    return {"rps": requests / wall, "p50": percentile(latencies, 0.5), "p95": percentile(latencies, 0.95),
            "wall": wall, "cpu": cpu}


def paired(server: Server, model, render, requests: int, max_tokens: int) -> dict:
    """Concurrency 1, each request timed beside its loop twin: the median of serve/loop ratios,
    and both sides' CPU time (the server process's, this process's for the loop)."""
    import httpx

    client = httpx.Client(base_url=server.url + "/v1", timeout=600)
    ratios, loop_cpu, serve_cpu = [], 0.0, 0.0
    with model.threads():
        for i, q in enumerate(questions(requests)):
            prompt = render(q)
            body = {"messages": [{"role": "user", "content": q}], "max_tokens": max_tokens, "temperature": 0}
            times = {}
            for side in (("loop", "serve") if i % 2 == 0 else ("serve", "loop")):
                if side == "loop":
                    cpu, t = time.process_time(), time.perf_counter()
                    model.generate_ids([prompt], max_tokens)
                    times[side], loop_cpu = time.perf_counter() - t, loop_cpu + time.process_time() - cpu
                else:
                    cpu, t = server.cpu_seconds(), time.perf_counter()
                    client.post("/chat/completions", json=body).raise_for_status()
                    times[side], serve_cpu = time.perf_counter() - t, serve_cpu + server.cpu_seconds() - cpu
            ratios.append(times["serve"] / times["loop"])
    client.close()
    return {"ratio": statistics.median(ratios), "cpu_ratio": serve_cpu / loop_cpu}


def span(values: list[float], fmt: str = "{:.3f}") -> str:
    lo, hi = min(values), max(values)
    return fmt.format(statistics.median(values)) + f" [{fmt.format(lo)}..{fmt.format(hi)}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--spec")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--requests", type=int, default=64)
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--max-batch", type=int, default=8)
    args = parser.parse_args()
    spec = spec_path(args.spec)
    results: dict[str, list[dict]] = {"loop": [], "c1": [], "c8": [], "c32": [], "paired": []}
    server = Server(spec, args.max_batch)
    model, render = load_model(spec)
    try:
        for _ in range(args.runs):
            # Interleaved, so machine load drifts affect the baseline and the server alike.
            results["loop"].append(baseline(spec, args.requests, args.max_tokens))
            for c in (1, 8, 32):
                results[f"c{c}"].append(load(server, c, args.requests, args.max_tokens))
            results["paired"].append(paired(server, model, render, args.requests, args.max_tokens))
    finally:
        server.stop()
    print(f"\n{args.requests} requests x {args.runs} runs, max_tokens={args.max_tokens}, "
          f"--max-batch {args.max_batch}; median [min..max]")
    print(f"{'':<22}{'req/s':>24}{'p50 s':>24}{'p95 s':>24}{'wall s':>24}{'cpu s':>24}")
    for key, label in (("loop", "generate loop (base)"), ("c1", "serve, concurrency 1"),
                       ("c8", "serve, concurrency 8"), ("c32", "serve, concurrency 32")):
        rows = results[key]
        print(f"{label:<22}" + "".join(f"{span([r[m] for r in rows]):>24}" for m in ("rps", "p50", "p95", "wall", "cpu")))
    overhead = [c["p50"] / b["p50"] for c, b in zip(results["c1"], results["loop"])]
    gain8 = [c["rps"] / b["rps"] for c, b in zip(results["c8"], results["loop"])]
    gain32 = [c["rps"] / b["rps"] for c, b in zip(results["c32"], results["loop"])]
    print(f"\nlatency overhead at concurrency 1 (serve p50 / loop p50): {span(overhead, '{:.2f}x')}  (goal <= 1.10x)")
    print(f"  paired, each request beside its loop twin (median ratio): "
          f"{span([r['ratio'] for r in results['paired']], '{:.2f}x')}")
    print(f"  CPU time, paired (server process / loop):                "
          f"{span([r['cpu_ratio'] for r in results['paired']], '{:.2f}x')}")
    print(f"throughput at concurrency 8 (serve req/s / loop req/s):  {span(gain8, '{:.2f}x')}  (goal > 1x)")
    print(f"throughput at concurrency 32:                            {span(gain32, '{:.2f}x')}")


if __name__ == "__main__":
    main()
