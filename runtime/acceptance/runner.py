"""Run the acceptance suite on a model: load it with transformers (a LoRA adapter through peft,
a full fine-tune as a model folder), answer every prompt with greedy decoding, judge the
answers with the assertion language, and do the same on the base model for comparison.

Prompts are laid out as training laid out examples: for the chat style through the tokenizer's
chat template with the training system prompt, exactly as Axolotl's ``chat_template`` dataset
type renders a conversation up to the assistant turn; for the alpaca style in Axolotl's alpaca
layout; for completion and input_output as raw text.
torch, transformers and peft are imported inside functions only, after the offline switches
are set, so importing this module is cheap and can never reach the network.
"""

from __future__ import annotations

import gc
import logging
import math
import os
import time
import warnings
from abc import ABC, abstractmethod
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Literal, Sequence

from llmspec.compiler.environment import OFFLINE_ENV
from llmspec.spec.errors import Diagnostic, LlmspecError, Pos

from .assertions import TestOutcome, evaluate_test
from .junit import JUnitCase, case_from_outcome
from llmspec.compiler.acceptance import SuiteTest

Device = Literal["cpu", "cuda", "auto"]
PromptFormat = Literal["chat", "alpaca", "completion"]
Progress = Callable[[int, int], None]
"""``progress(done, total)``: called after each test answered (base model runs included)."""


# ChatML's end of turn: a model trained with ChatML stops there even when the tokenizer's
# eos_token is another token (Axolotl keeps the base eos and adds <|im_end|>).
END_OF_TURN_TOKENS = ("<|im_end|>", "<|eot_id|>", "<|end|>", "<end_of_turn>")
TOKENIZER_FILES = ("tokenizer_config.json", "tokenizer.json", "tokenizer.model")
# Import-time warnings about optional kernels (torchao, bitsandbytes) and a torch deprecation:
# nothing a user can act on, and they would bury the acceptance output.
NOISY_LOGGERS = ("torchao", "bitsandbytes", "torch.utils._pytree")
# Axolotl's AlpacaPrompter (instruct style), the layout `type: alpaca` trains on.
ALPACA_SYSTEM = ("Below is an instruction that describes a task. Write a response that "
                 "appropriately completes the request.")
ALPACA_TURN = "### Instruction:\n{instruction}\n\n### Response:\n"
# Below this many parameters, torch's intra-op threads cost more than they save (10x slower
# for builtin:tiny on a busy 2-core machine), so a CPU run uses one thread.
SMALL_MODEL_PARAMS = 20_000_000
CPU_BATCH = 8
CUDA_BATCH = 16


@dataclass(frozen=True)
class ModelRef:
    """A model to test. ``model_path``: a model folder (the base model, or a full fine-tune),
    or ``builtin:<name>``. ``adapter_path``: a peft (LoRA) adapter folder applied on top.
    ``tokenizer_path``: where the tokenizer is (default: the adapter folder when it holds one,
    since Axolotl saves the training tokenizer there, else the model folder)."""

    name: str
    model_path: Path | str
    adapter_path: Path | None = None
    tokenizer_path: Path | None = None


@dataclass(frozen=True)
class TestRun:
    """One test on one model: the answer and the verdict. ``duration`` in seconds (a batch's
    generation time is shared evenly among its tests)."""

    __test__ = False  # not a pytest test class, despite the name

    name: str
    prompt: str
    output: str
    outcome: TestOutcome
    duration: float
    tags: tuple[str, ...] = ()

    @property
    def passed(self) -> bool:
        return self.outcome.passed


@dataclass
class AcceptanceResult:
    """The suite run on the fine-tuned model and (optionally) on the base model, in suite order.
    ``gates`` is filled by the caller (``result.gates = evaluate_gates(...)``) and only feeds
    ``to_report``."""

    tests: list[SuiteTest]
    tuned: list[TestRun]
    base: list[TestRun] | None = None
    gates: list[Any] = field(default_factory=list)

    @property
    def total(self) -> int:
        return len(self.tuned)

    @property
    def passed(self) -> int:
        return sum(r.passed for r in self.tuned)

    @property
    def base_passed(self) -> int | None:
        return None if self.base is None else sum(r.passed for r in self.base)

    @property
    def pass_rate(self) -> float:
        """Share of tests the fine-tuned model passes; 0.0 for an empty suite."""
        return self.passed / self.total if self.total else 0.0

    @property
    def base_pass_rate(self) -> float | None:
        if self.base is None:
            return None
        return self.base_passed / len(self.base) if self.base else 0.0

    def pairs(self) -> list[tuple[SuiteTest, TestRun, TestRun | None]]:
        base = self.base if self.base is not None else [None] * len(self.tuned)
        return list(zip(self.tests, self.tuned, base))

    def to_report(self) -> dict[str, Any]:
        """The acceptance section of the run report (``acceptance.json``)."""
        tests = []
        for test, run, base in self.pairs():
            tests.append({
                "name": run.name,
                "prompt": run.prompt,
                "tags": list(test.tags),
                "passed": run.outcome.passed,
                "score": run.outcome.score,
                "output": run.output,
                "assertions": [{"key": r.key, "expected": r.expected,
                                "got": r.got if r.error is None else f"error: {r.error}",
                                "passed": r.passed} for r in run.outcome.results],
                "base": None if base is None else {"passed": base.outcome.passed,
                                                   "score": base.outcome.score,
                                                   "output": base.output},
            })
        return {"pass_rate": self.pass_rate, "base_pass_rate": self.base_pass_rate,
                "gates": [g.to_dict() for g in self.gates], "tests": tests}


def junit_cases(result: AcceptanceResult) -> list[JUnitCase]:
    """One JUnit case per test, judged on the fine-tuned model, with the base model's answer."""
    return [case_from_outcome(run.name, run.outcome, tags=test.tags, time=run.duration,
                              prompt=run.prompt, output=run.output,
                              base_outcome=base.outcome if base else None,
                              base_output=base.output if base else None)
            for test, run, base in result.pairs()]


# --------------------------------------------------------------------------- entry points

def run_suite(tests: Sequence[SuiteTest], *, model_path: Path | str, adapter_path: Path | None,
              tokenizer_path: Path | None = None, device: Device = "auto",
              default_max_new_tokens: int = 64, progress: Progress | None = None,
              chat_template: str | None = None, batch_size: int | None = None,
              prompt_format: PromptFormat = "chat") -> list[TestRun]:
    """Load one model and run ``tests`` on it. ``chat_template`` (Jinja) overrides the
    tokenizer's own; ``prompt_format`` is the layout training used (see
    ``prompt_format_for_style``); ``batch_size`` defaults to 8 on CPU, 16 on CUDA."""
    model = load_model(model_path, adapter_path=adapter_path, tokenizer_path=tokenizer_path,
                       device=device, chat_template=chat_template, prompt_format=prompt_format)
    try:
        return model.run(tests, default_max_new_tokens=default_max_new_tokens,
                         batch_size=batch_size, progress=_counter(progress, len(tests)))
    finally:
        model.close()


def run_acceptance(tests: Sequence[SuiteTest], *, tuned: ModelRef, base: ModelRef | None,
                   device: Device = "auto", default_max_new_tokens: int = 64,
                   progress: Progress | None = None, chat_template: str | None = None,
                   batch_size: int | None = None,
                   prompt_format: PromptFormat = "chat") -> AcceptanceResult:
    """Run ``tests`` on the fine-tuned model, then on the base model with the same prompts.

    The base model's prompts are rendered with the fine-tuned model's chat template (the one
    training used) unless ``chat_template`` is given. When the fine-tuned model is an adapter
    on the base model's folder, the weights are loaded once and the base run disables the
    adapter.
    """
    tests = list(tests)
    count = _counter(progress, len(tests) * (2 if base is not None else 1))
    model = load_model(tuned.model_path, adapter_path=tuned.adapter_path,
                       tokenizer_path=tuned.tokenizer_path, device=device,
                       chat_template=chat_template, prompt_format=prompt_format)
    try:
        tuned_runs = model.run(tests, default_max_new_tokens=default_max_new_tokens,
                               batch_size=batch_size, progress=count)
        if base is None:
            return AcceptanceResult(tests=tests, tuned=tuned_runs, base=None)
        template = chat_template or model.chat_template
        if shares_weights(tuned, base):
            with model.adapter_disabled():
                base_runs = model.run(tests, default_max_new_tokens=default_max_new_tokens,
                                      batch_size=batch_size, progress=count)
            return AcceptanceResult(tests=tests, tuned=tuned_runs, base=base_runs)
    finally:
        model.close()
    base_model = load_model(base.model_path, adapter_path=base.adapter_path,
                            tokenizer_path=base.tokenizer_path, device=device,
                            chat_template=template, prompt_format=prompt_format)
    try:
        base_runs = base_model.run(tests, default_max_new_tokens=default_max_new_tokens,
                                   batch_size=batch_size, progress=count)
    finally:
        base_model.close()
    return AcceptanceResult(tests=tests, tuned=tuned_runs, base=base_runs)


def shares_weights(tuned: ModelRef, base: ModelRef) -> bool:
    """The fine-tuned model is an adapter on the base model's own folder: one load serves both."""
    if tuned.adapter_path is None or base.adapter_path is not None:
        return False
    if base.tokenizer_path is not None and base.tokenizer_path != tuned.tokenizer_path:
        return False
    return _resolve(tuned.model_path) == _resolve(base.model_path)


def _counter(progress: Progress | None, total: int) -> Callable[[], None]:
    done = 0

    def tick() -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress(done, total)

    return tick


# --------------------------------------------------------------------------- loading

def offline_environment() -> None:
    """Make the HF stack local-only and quiet. Must run before transformers is imported."""
    os.environ.update(OFFLINE_ENV)
    for name in NOISY_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    # bitsandbytes (imported by peft) tries to fetch a CPU kernel from the hub and warns that
    # offline mode skipped the check; it falls back to its own kernels.
    warnings.filterwarnings("ignore", message="Skipping publisher trust check",
                            category=UserWarning)


def _resolve(model_path: Path | str) -> Path:
    text = str(model_path)
    if text.startswith("builtin:"):
        from llmspec.runtime.models.tinymodel import resolve_builtin

        return resolve_builtin(text)
    return Path(model_path).expanduser().resolve()


def _error(code: str, message: str, path: Path | None = None, hint: str | None = None
           ) -> LlmspecError:
    return LlmspecError(Diagnostic(code, message, Pos(str(path)) if path else None, hint=hint))


def _check_model_dir(path: Path) -> None:
    if not path.exists():
        raise _error("model-not-found", "model folder does not exist", path)
    if not path.is_dir() or not (path / "config.json").is_file():
        raise _error("not-a-model", "not a model folder (no config.json in it)", path,
                     hint="give a folder saved with save_pretrained, or a LoRA adapter as the "
                          "adapter")


def _check_adapter_dir(path: Path) -> None:
    if not path.exists():
        raise _error("adapter-missing", "adapter folder does not exist", path)
    if not path.is_dir() or not (path / "adapter_config.json").is_file():
        hint = ("it holds a config.json: a full fine-tune is loaded as the model, not as an "
                "adapter" if (path / "config.json").is_file() else None)
        raise _error("not-an-adapter", "not a peft adapter folder (no adapter_config.json in it)",
                     path, hint=hint)


def _tokenizer_dir(model_dir: Path, adapter_dir: Path | None, explicit: Path | None) -> Path:
    if explicit is not None:
        return _resolve(explicit)
    if adapter_dir is not None and any((adapter_dir / f).is_file() for f in TOKENIZER_FILES):
        return adapter_dir
    return model_dir


def load_model(model_path: Path | str, *, adapter_path: Path | None = None,
               tokenizer_path: Path | None = None, device: Device = "auto",
               chat_template: str | None = None,
               prompt_format: PromptFormat = "chat") -> "LoadedModel":
    """Load a model (and adapter) for generation; ``LlmspecError`` names what is wrong."""
    model_dir = _resolve(model_path)
    _check_model_dir(model_dir)
    adapter_dir = Path(adapter_path).expanduser().resolve() if adapter_path is not None else None
    if adapter_dir is not None:
        _check_adapter_dir(adapter_dir)
    tok_dir = _tokenizer_dir(model_dir, adapter_dir, tokenizer_path)

    offline_environment()
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    target = _pick_device(device, torch)
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(tok_dir), local_files_only=True)
    except Exception as exc:  # transformers raises OSError, ValueError, KeyError...
        raise _error("tokenizer-load", "cannot load the tokenizer: "
                     f"{type(exc).__name__}: {_first_line(exc)}", tok_dir) from None
    if chat_template:
        tokenizer.chat_template = chat_template
    # CPU: float32, because bf16 matmuls on CPU are slow and round differently per kernel.
    dtype = "auto" if target == "cuda" else torch.float32
    try:
        model = AutoModelForCausalLM.from_pretrained(str(model_dir), local_files_only=True,
                                                     dtype=dtype)
    except Exception as exc:
        raise _error("model-load", "cannot load the model: "
                     f"{type(exc).__name__}: {_first_line(exc)}", model_dir) from None
    if adapter_dir is not None:
        from peft import PeftModel

        try:
            model = PeftModel.from_pretrained(model, str(adapter_dir), is_trainable=False)
        except Exception as exc:
            raise _error("adapter-load", f"cannot apply this adapter to the model in {model_dir}: "
                         f"{type(exc).__name__}: {_first_line(exc)}", adapter_dir,
                         hint="was the adapter trained on this base model?") from None
    model.to(target)
    model.eval()
    return LoadedModel(model, tokenizer, target, label=str(adapter_dir or model_dir),
                       prompt_format=prompt_format)


def _pick_device(device: Device, torch: Any) -> str:
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise _error("no-cuda", "device cuda was asked for, but torch sees no CUDA GPU",
                     hint="use device auto or cpu")
    if device not in ("cpu", "cuda"):
        raise _error("bad-device", f"unknown device {device!r}; use cpu, cuda or auto")
    return device


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else "no details"


# --------------------------------------------------------------------------- the model at work

class Answerer(ABC):
    """Answers and judges a suite. Subclasses say how a conversation becomes a prompt
    (``render``) and how prompts become answers (``generate``): a model loaded here
    (``LoadedModel``) or a deployed endpoint (``runtime.acceptance.endpoint``), so both are
    judged by the same code."""

    label: str = "model"

    @abstractmethod
    def render(self, conversation: list[dict[str, str]]) -> Any:
        """The prompt this answerer's ``generate`` takes for one conversation."""

    @abstractmethod
    def generate(self, prompts: Sequence[Any], max_new_tokens: int) -> list[str]:
        """One greedy answer per prompt."""

    def perplexity_fn(self, conversation: list[dict[str, str]]) -> Callable[[str, str], float] | None:
        """The perplexity assertion's scorer for one test, or None when this model cannot
        score a reference answer (the assertion then reports it could not be evaluated)."""
        return None

    def threads(self):
        return nullcontext()

    def run(self, tests: Sequence[SuiteTest], *, default_max_new_tokens: int = 64,
            batch_size: int | None = None, progress: Callable[[], None] | None = None
            ) -> list[TestRun]:
        """Answer and judge every test; results in the order of ``tests``."""
        size = batch_size or self.default_batch()
        rendered = [self.render(t.conversation()) for t in tests]
        with self.threads():
            return self._run(tests, rendered, default_max_new_tokens, size, progress)

    def default_batch(self) -> int:
        return CPU_BATCH

    def _run(self, tests: Sequence[SuiteTest], rendered: list[Any],
             default_max_new_tokens: int, size: int, progress: Callable[[], None] | None
             ) -> list[TestRun]:
        budget = [t.max_new_tokens or default_max_new_tokens for t in tests]
        # Batches of one token budget and similar prompt lengths waste the least padding.
        groups: dict[int, list[int]] = {}
        for i in sorted(range(len(tests)), key=lambda i: len(rendered[i])):
            groups.setdefault(budget[i], []).append(i)
        runs: dict[int, TestRun] = {}
        for tokens, members in sorted(groups.items()):
            for start in range(0, len(members), size):
                batch = members[start:start + size]
                runs.update(self._run_batch(tests, rendered, tokens, batch))
                if progress:
                    for _ in batch:
                        progress()
        return [runs[i] for i in range(len(tests))]

    def _run_batch(self, tests: Sequence[SuiteTest], rendered: list[Any],
                   max_new_tokens: int, batch: list[int]) -> dict[int, TestRun]:
        started = time.perf_counter()
        try:
            outputs = self.generate([rendered[i] for i in batch], max_new_tokens)
        except LlmspecError:
            raise
        except Exception as exc:
            raise _error("generate", f"{self.label} failed to answer test "
                         f"{tests[batch[0]].name!r}: {type(exc).__name__}: {_first_line(exc)}"
                         ) from None
        share = (time.perf_counter() - started) / len(batch)
        runs = {}
        for i, output in zip(batch, outputs):
            test = tests[i]
            t0 = time.perf_counter()
            outcome = evaluate_test(test.expectations, output, prompt=test.display_prompt,
                                    perplexity_fn=self.perplexity_fn(test.conversation()))
            runs[i] = TestRun(name=test.name, prompt=test.display_prompt, output=output,
                              outcome=outcome, duration=share + time.perf_counter() - t0,
                              tags=tuple(test.tags))
        return runs


class LoadedModel(Answerer):
    """A model and its tokenizer on a device, answering prompts greedily."""

    def __init__(self, model: Any, tokenizer: Any, device: str, *, label: str,
                 prompt_format: PromptFormat = "chat"):
        if prompt_format not in ("chat", "alpaca", "completion"):
            raise _error("bad-prompt-format", f"unknown prompt format {prompt_format!r}; use "
                         "chat, alpaca or completion")
        self.prompt_format = prompt_format
        self.model = model
        self.tokenizer = tokenizer
        self.device = device
        self.label = label
        self.stop_ids = _stop_ids(tokenizer, model)
        if not self.stop_ids:
            raise _error("no-eos", f"the tokenizer of {label} has no end-of-sequence token, so "
                         "generation could not stop")
        pad = tokenizer.pad_token_id
        self.pad_id = pad if pad is not None else self.stop_ids[0]

    @property
    def chat_template(self) -> str | None:
        template = getattr(self.tokenizer, "chat_template", None)
        return template if isinstance(template, str) else None

    def render(self, conversation: list[dict[str, str]]) -> list[int]:
        """Token ids of the prompt as training laid it out, ending where the answer starts."""
        if self.prompt_format == "chat":
            return self._render_chat(conversation)
        turns = [m for m in conversation if m["role"] != "system"]
        if len(turns) != 1 or turns[0]["role"] != "user":
            raise _error("prompt-format", f"a {self.prompt_format}-style model answers single "
                         "prompts, not conversations", hint="holdout tests need the chat style")
        text = turns[0]["content"]
        if self.prompt_format == "alpaca":
            text = f"{ALPACA_SYSTEM}\n\n" + ALPACA_TURN.format(instruction=text)
        # As Axolotl tokenizes these styles: with the tokenizer's own BOS, if it adds one.
        return list(self.tokenizer(text)["input_ids"])

    def _render_chat(self, conversation: list[dict[str, str]]) -> list[int]:
        if not self.chat_template:
            raise _error("no-chat-template", f"the tokenizer of {self.label} has no chat "
                         "template, so prompts cannot be rendered as in training",
                         hint="set base_model.chat_template (e.g. chatml)")
        try:
            text = self.tokenizer.apply_chat_template(conversation, tokenize=False,
                                                      add_generation_prompt=True)
        except Exception as exc:  # jinja errors: a template that rejects this conversation
            raise _error("chat-template", f"the chat template of {self.label} failed on a "
                         f"test prompt: {type(exc).__name__}: {_first_line(exc)}") from None
        # The template writes BOS and special tokens itself; adding them again would double BOS.
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def generate(self, prompts: Sequence[list[int]], max_new_tokens: int) -> list[str]:
        """Greedy answers to already-rendered prompts, left-padded into one batch."""
        return [self.decode(ids) for ids in self.generate_ids(prompts, max_new_tokens)]

    def decode(self, ids: Sequence[int]) -> str:
        return self.tokenizer.decode(list(ids), skip_special_tokens=True)

    def generate_ids(self, prompts: Sequence[list[int]], max_new_tokens: int, *,
                     temperature: float = 0.0, top_p: float = 1.0, seed: int | None = None,
                     streamer: Any = None) -> list[list[int]]:
        """Answer token ids (cut before the first stop token) for already-rendered prompts,
        left-padded into one batch. Temperature 0 is greedy decoding. ``streamer`` is a
        transformers streamer; it sees the whole batch's tokens step by step."""
        import torch
        from transformers import GenerationConfig

        width = max(len(p) for p in prompts)
        ids = torch.full((len(prompts), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(prompts), width), dtype=torch.long)
        for row, p in enumerate(prompts):
            # Left padding: every prompt ends where generation starts.
            ids[row, width - len(p):] = torch.tensor(p, dtype=torch.long)
            mask[row, width - len(p):] = 1
        # A fresh config, not the model's: a hub generation_config.json often turns sampling on.
        sample = temperature > 0
        config = GenerationConfig(do_sample=sample, num_beams=1, max_new_tokens=max_new_tokens,
                                  eos_token_id=list(self.stop_ids), pad_token_id=self.pad_id,
                                  **({"temperature": temperature, "top_p": top_p, "top_k": 0}
                                     if sample else {}))
        if sample and seed is not None:
            torch.manual_seed(seed)
        with torch.inference_mode():
            out = self.model.generate(input_ids=ids.to(self.device),
                                      attention_mask=mask.to(self.device),
                                      generation_config=config,
                                      **({"streamer": streamer} if streamer is not None else {}))
        answers = []
        for row in out[:, width:].tolist():
            cut = next((i for i, t in enumerate(row) if t in self.stop_ids), len(row))
            answers.append(row[:cut])
        return answers

    def perplexity(self, conversation: list[dict[str, str]], reference: str) -> float:
        """exp(mean negative log-likelihood) of the reference answer's tokens, given the
        rendered conversation."""
        import torch

        prompt = self.render(conversation)
        answer = list(self.tokenizer(reference, add_special_tokens=False)["input_ids"])
        if not answer:
            raise ValueError("the reference answer has no tokens")
        ids = torch.tensor([prompt + answer], dtype=torch.long, device=self.device)
        labels = ids.clone()
        labels[0, :len(prompt)] = -100  # score only the answer
        with torch.inference_mode():
            loss = self.model(input_ids=ids, labels=labels).loss
        return math.exp(float(loss))

    def answer_nll(self, conversations: Sequence[list[dict[str, str]]], answers: Sequence[str], *,
                   batch_size: int = CPU_BATCH) -> list[tuple[float, int]]:
        """(summed negative log-likelihood in nats, token count) of each answer given its
        rendered conversation, teacher-forced; (0.0, 0) for an empty answer."""
        import torch

        pairs = [(self.render(c), list(self.tokenizer(a, add_special_tokens=False)["input_ids"]))
                 for c, a in zip(conversations, answers)]
        out: list[tuple[float, int]] = [(0.0, 0)] * len(pairs)
        order = [i for i in sorted(range(len(pairs)), key=lambda i: len(pairs[i][0]) + len(pairs[i][1]))
                 if pairs[i][1]]
        with self.threads(), torch.inference_mode():
            for start in range(0, len(order), batch_size):
                batch = order[start:start + batch_size]
                width = max(len(pairs[i][0]) + len(pairs[i][1]) for i in batch)
                ids = torch.full((len(batch), width), self.pad_id, dtype=torch.long)
                mask = torch.zeros((len(batch), width), dtype=torch.long)
                labels = torch.full((len(batch), width), -100, dtype=torch.long)
                for row, i in enumerate(batch):
                    prompt, answer = pairs[i]
                    seq = prompt + answer
                    ids[row, :len(seq)] = torch.tensor(seq, dtype=torch.long)
                    mask[row, :len(seq)] = 1
                    labels[row, len(prompt):len(seq)] = torch.tensor(answer, dtype=torch.long)
                logits = self.model(input_ids=ids.to(self.device), attention_mask=mask.to(self.device)).logits
                # Position t predicts token t+1.
                logp = torch.log_softmax(logits[:, :-1].float(), dim=-1)
                target = labels[:, 1:].to(self.device)
                picked = logp.gather(-1, target.clamp(min=0).unsqueeze(-1)).squeeze(-1)
                scored = target != -100
                for row, i in enumerate(batch):
                    out[i] = (float(-(picked[row][scored[row]]).sum()), int(scored[row].sum()))
        return out

    def default_batch(self) -> int:
        return CUDA_BATCH if self.device == "cuda" else CPU_BATCH

    def perplexity_fn(self, conversation: list[dict[str, str]]) -> Callable[[str, str], float]:
        return lambda _prompt, reference: self.perplexity(conversation, reference)

    @contextmanager
    def threads(self) -> Iterator[None]:
        import torch

        small = sum(p.numel() for p in self.model.parameters()) < SMALL_MODEL_PARAMS
        if self.device != "cpu" or not small:
            yield
            return
        before = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            yield
        finally:
            torch.set_num_threads(before)

    def adapter_disabled(self):
        """Context in which a peft model answers as its base model."""
        disable = getattr(self.model, "disable_adapter", None)
        return disable() if disable is not None else nullcontext()

    def close(self) -> None:
        """Free the weights now, so the next model does not share the GPU with this one."""
        device = self.device
        self.model = None
        gc.collect()
        if device == "cuda":
            import torch

            torch.cuda.empty_cache()


def prompt_format_for_style(style: str) -> PromptFormat:
    """The prompt layout of a ``format.style``: input_output examples are free text, so their
    tests are prompted as completions."""
    formats: dict[str, PromptFormat] = {"chat": "chat", "alpaca": "alpaca"}
    return formats.get(style, "completion")


def _stop_ids(tokenizer: Any, model: Any) -> tuple[int, ...]:
    ids: list[int] = []

    def add(value: Any) -> None:
        for v in value if isinstance(value, (list, tuple)) else [value]:
            if isinstance(v, int) and v >= 0 and v not in ids:
                ids.append(v)

    add(tokenizer.eos_token_id)
    add(getattr(getattr(model, "generation_config", None), "eos_token_id", None))
    vocab = tokenizer.get_vocab()
    for token in END_OF_TURN_TOKENS:
        if token in vocab:
            add(vocab[token])
    return tuple(ids)


__all__ = ["AcceptanceResult", "Answerer", "Device", "LoadedModel", "ModelRef", "OFFLINE_ENV", "Progress",
           "PromptFormat", "TestRun", "junit_cases", "load_model", "offline_environment",
           "prompt_format_for_style", "run_acceptance", "run_suite", "shares_weights"]
