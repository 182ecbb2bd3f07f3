"""The built-in demo model: a tiny Llama and its tokenizer, built offline.

``base_model.id: builtin:tiny`` must work on a laptop with no network and no
GPU, and give the same bytes on every machine so lock files and stage
fingerprints agree everywhere. So nothing is downloaded: the tokenizer is a
byte-level BPE trained here on a fixed corpus, and the weights come from a
seeded NumPy ``RandomState`` (a frozen stream, unlike torch's samplers, which
may change between releases). Every JSON file is written by us with sorted
keys, never by ``save_pretrained``, which stamps library versions into them.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from llmspec.spec.errors import Diagnostic, LlmspecError, did_you_mean

from .store import build_folder, cache_root

TINY_MODEL_ID = "builtin:tiny"
BUILTIN_PREFIX = "builtin:"
# Bump whenever any byte of the output could change: it names the cache dir.
BUILDER_VERSION = 2

PAD_TOKEN = "<|endoftext|>"
IM_START = "<|im_start|>"
IM_END = "<|im_end|>"
SPECIAL_TOKENS = (PAD_TOKEN, IM_START, IM_END)  # ids 0, 1, 2

VOCAB_SIZE = 1024
HIDDEN_SIZE = 64
INTERMEDIATE_SIZE = 128
NUM_LAYERS = 2
NUM_HEADS = 4
NUM_KV_HEADS = 2
MAX_POSITIONS = 512
INIT_STD = 0.02
# LoRA freezes lm_head; at 0.02 its logits stay within about +-1.3 after the final
# RMSNorm, the softmax stays flat and the loss cannot fall below ~ln(300) however
# well the adapter learns. 0.25 lets a LoRA run reach a loss near zero.
LM_HEAD_STD = 0.25
SEED = 1234

# ChatML as Qwen writes it, so Axolotl's `chat_template: tokenizer_default`
# and `apply_chat_template(add_generation_prompt=True)` both work.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)

# The tokenizer's training text. Customer-support English so that the words
# a demo FAQ uses become single tokens and short examples stay short.
# Changing it changes the model: bump BUILDER_VERSION.
CORPUS = """\
Every message in a chat has a role: system, user or assistant.
The system message sets the rules, the user asks a question and the assistant answers the user.
Hello, thank you for contacting customer support. How can I help you today?
Hi, I have a question about my order. It has not arrived yet and I am worried.
I am sorry to hear that your order is late. Could you please send me your order number?
Sure, my order number is in the email you sent me last week.
Thank you. I can see that your package was shipped on Monday and should arrive within five business days.
You can track your package with the tracking link in your shipping confirmation email.
If the package does not arrive by Friday, please reply to this email and we will send a replacement.
How do I reset my password? I forgot my password and cannot log in to my account.
To reset your password, click "Forgot password" on the login page and follow the link we email you.
The reset link expires after one hour. If you do not receive the email, check your spam folder.
I would like to cancel my subscription. How can I do that?
You can cancel your subscription at any time from the Billing page in your account settings.
Your plan will stay active until the end of the current billing period, and you will not be charged again.
Can I get a refund? The product I received is damaged.
We are sorry the product arrived damaged. We offer a full refund within thirty days of purchase.
Please send us a photo of the damage and we will process your refund right away.
Refunds are returned to the original payment method within five to seven business days.
What are your opening hours? When can I call you?
Our support team is available Monday to Friday, from nine in the morning to six in the evening.
You can also reach us by email or chat at any time, and we will answer within one business day.
How do I change my shipping address? I moved to a new house.
You can update your shipping address in your account under Addresses before the order ships.
If your order has already shipped, please contact the carrier to change the delivery address.
Do you ship internationally? I live outside the country.
Yes, we ship to most countries. Shipping costs and delivery times are shown at checkout.
International orders may be subject to customs fees, which are paid by the customer.
My payment was declined. What should I do?
Please check that your card details are correct and that your bank allows online payments.
You can also pay with another card or with a bank transfer. Contact your bank if the problem continues.
I was charged twice for the same order. Can you help me?
I apologize for the trouble. I have checked your account and I can see the duplicate charge.
I have refunded the second payment. You should see the money back in your account in a few days.
How do I update my billing information?
Go to Settings, then Billing, and click Update payment method. Your new card will be used for the next invoice.
Where can I download my invoice?
Invoices are available in your account under Billing history. You can download each invoice as a PDF.
Can I change my order after I placed it?
We can change an order if it has not been shipped yet. Please tell us what you would like to change.
The item I ordered is out of stock. When will it be available again?
We expect new stock in two weeks. We can notify you by email when the item is back in stock.
How do I return an item?
To return an item, open your order, select the item and choose Return. Print the label and drop the package at any post office.
Returns are free within thirty days. Once we receive the item, we will send your refund.
Is my personal data safe with you?
Yes. We protect your data and never sell it. You can read our privacy policy on our website.
You can ask us to delete your account and your data at any time.
How do I delete my account?
To delete your account, go to Settings, then Account, and click Delete account. This cannot be undone.
I cannot find the confirmation email. Can you send it again?
Of course. I have sent the confirmation email again. Please also check your spam or junk folder.
The app keeps crashing when I open it. What can I do?
Please make sure you have the latest version of the app. Try to restart your phone and open the app again.
If the problem continues, uninstall the app, install it again and log in with your account.
Thank you for your patience. Is there anything else I can help you with?
No, that is all. Thank you for your help, have a nice day!
You are welcome. Have a great day, and do not hesitate to contact us if you have any other questions.
Best regards, the customer support team.
Dear customer, we have received your request and a member of our team will reply shortly.
Your ticket number is in the subject of this email. Please keep it for future reference.
We are happy to help. Please let us know if this solved your problem.
Can I speak to a manager? I am not happy with the service.
I understand your frustration, and I am sorry for the experience. I will ask a manager to call you back today.
Do you offer a discount for students or for large orders?
Yes, students get ten percent off with a valid student email, and we offer special prices for orders of more than fifty items.
How long is the warranty on this product?
All our products come with a two year warranty that covers defects in materials and workmanship.
The warranty does not cover damage caused by accidents or normal wear.
Please describe the issue and attach your receipt, and we will repair or replace the product.
I did not receive a verification code. How can I verify my email address?
Click Resend code on the verification page. The code is valid for ten minutes.
You can change your email address in your profile settings after you verify it.
Can I use more than one discount code on an order?
Only one discount code can be used per order. The code must be entered before payment.
Your gift card balance can be used together with a discount code.
What is the status of my refund?
Your refund was approved yesterday. It can take up to ten business days for your bank to show it.
Please reply to this message with any questions. We are here to help.
"""


def _error(code: str, message: str, hint: str | None = None) -> LlmspecError:
    return LlmspecError(Diagnostic(code=code, message=message, hint=hint))


def model_dir(cache_dir: Path | None = None) -> Path:
    """The path the tiny model lives at (built or not) under ``cache_dir`` or the default cache."""
    root = Path(cache_dir) if cache_dir is not None else cache_root()
    return root / "models" / f"tiny-v{BUILDER_VERSION}"


# The files a complete build holds. A directory at the final path is complete
# by construction (atomic rename), the check only guards against tampering.
MODEL_FILES = (
    "config.json",
    "generation_config.json",
    "model.safetensors",
    "special_tokens_map.json",
    "tokenizer.json",
    "tokenizer_config.json",
)


def _is_complete(path: Path) -> bool:
    return all((path / name).is_file() for name in MODEL_FILES)


def build_tiny_model(cache_dir: Path | None = None) -> Path:
    """Return the directory of the tiny model, building it first if the cache lacks it
    (concurrent builders are safe: see ``store.build_folder``)."""
    target = model_dir(cache_dir)

    def write(tmp: Path) -> None:
        _write_tokenizer(tmp)
        _write_model(tmp)

    try:
        return build_folder(target, _is_complete, write)
    except OSError as exc:
        raise _error("tiny-model-build", f"could not build the tiny model in {target.parent}: {exc}",
                     hint="check that the cache directory is writable (set LLMSPEC_CACHE_DIR)") from exc


def resolve_builtin(model_id: str, cache_dir: Path | None = None) -> Path:
    """Map a ``builtin:<name>`` model id to a local directory, building it if needed."""
    if model_id == TINY_MODEL_ID:
        return build_tiny_model(cache_dir)
    raise _error(
        "unknown-builtin",
        f"unknown built-in model '{model_id}'",
        hint=did_you_mean(model_id, [TINY_MODEL_ID]) or f"the only built-in model is '{TINY_MODEL_ID}'",
    )


def fingerprint(cache_dir: Path | None = None) -> str:
    """sha256 over the built files' names and contents: changes iff the model does."""
    path = build_tiny_model(cache_dir)
    outer = hashlib.sha256()
    for name in MODEL_FILES:
        outer.update(name.encode() + b"\0")
        outer.update(hashlib.sha256((path / name).read_bytes()).digest())
    return outer.hexdigest()


def _dump_json(path: Path, data: dict) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8")


def _training_texts() -> list[str]:
    """The corpus laid out as chat turns, so role names that follow ``<|im_start|>``
    with no space before them ("user", "assistant") become single tokens."""
    texts = []
    for n, line in enumerate(CORPUS.splitlines()):
        if n % 10 == 0:
            texts.append("system\nYou are a helpful customer support assistant.\n")
        texts.append(("user", "assistant")[n % 2] + "\n" + line + "\n")
    return texts


def _write_tokenizer(out: Path) -> None:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        # Frequency-1 merges too, so the vocab fills up to exactly VOCAB_SIZE and
        # matches the embedding matrix.
        min_frequency=1,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_training_texts(), trainer=trainer)
    # Tokenizer.to_str emits vocab and merges in id order, so the file is stable.
    (out / "tokenizer.json").write_text(tok.to_str(pretty=True) + "\n", encoding="utf-8")

    special = {"eos_token": IM_END, "pad_token": PAD_TOKEN}
    added = {
        str(tok.token_to_id(t)): {
            "content": t, "lstrip": False, "normalized": False, "rstrip": False,
            "single_word": False, "special": True,
        }
        for t in SPECIAL_TOKENS
    }
    _dump_json(out / "tokenizer_config.json", {
        "add_bos_token": False,
        "add_eos_token": False,
        "added_tokens_decoder": added,
        "additional_special_tokens": [IM_START, IM_END],
        "bos_token": None,
        "chat_template": CHAT_TEMPLATE,
        "clean_up_tokenization_spaces": False,
        "model_max_length": MAX_POSITIONS,
        "padding_side": "right",
        "tokenizer_class": "PreTrainedTokenizerFast",
        "unk_token": None,
        **special,
    })
    _dump_json(out / "special_tokens_map.json", {"additional_special_tokens": [IM_START, IM_END], **special})


def _config() -> dict:
    head_dim = HIDDEN_SIZE // NUM_HEADS
    return {
        "architectures": ["LlamaForCausalLM"],
        "attention_bias": False,
        "attention_dropout": 0.0,
        "bos_token_id": None,
        "eos_token_id": SPECIAL_TOKENS.index(IM_END),
        "head_dim": head_dim,
        "hidden_act": "silu",
        "hidden_size": HIDDEN_SIZE,
        "initializer_range": INIT_STD,
        "intermediate_size": INTERMEDIATE_SIZE,
        "max_position_embeddings": MAX_POSITIONS,
        "mlp_bias": False,
        "model_type": "llama",
        "num_attention_heads": NUM_HEADS,
        "num_hidden_layers": NUM_LAYERS,
        "num_key_value_heads": NUM_KV_HEADS,
        "pad_token_id": SPECIAL_TOKENS.index(PAD_TOKEN),
        "pretraining_tp": 1,
        "rms_norm_eps": 1e-5,
        "rope_scaling": None,
        "rope_theta": 10000.0,
        "tie_word_embeddings": False,
        "torch_dtype": "float32",
        "use_cache": True,
        "vocab_size": VOCAB_SIZE,
    }


def _weight_shapes() -> list[tuple[str, tuple[int, ...]]]:
    h, i, v = HIDDEN_SIZE, INTERMEDIATE_SIZE, VOCAB_SIZE
    head_dim = h // NUM_HEADS
    kv = NUM_KV_HEADS * head_dim
    shapes: list[tuple[str, tuple[int, ...]]] = [("model.embed_tokens.weight", (v, h))]
    for n in range(NUM_LAYERS):
        p = f"model.layers.{n}."
        shapes += [
            (p + "input_layernorm.weight", (h,)),
            (p + "self_attn.q_proj.weight", (h, h)),
            (p + "self_attn.k_proj.weight", (kv, h)),
            (p + "self_attn.v_proj.weight", (kv, h)),
            (p + "self_attn.o_proj.weight", (h, h)),
            (p + "post_attention_layernorm.weight", (h,)),
            (p + "mlp.gate_proj.weight", (i, h)),
            (p + "mlp.up_proj.weight", (i, h)),
            (p + "mlp.down_proj.weight", (h, i)),
        ]
    shapes += [("model.norm.weight", (h,)), ("lm_head.weight", (v, h))]
    return shapes


def _init_std(name: str) -> float:
    if name == "lm_head.weight":
        return LM_HEAD_STD
    return INIT_STD


def _write_model(out: Path) -> None:
    import numpy as np
    from safetensors.numpy import save_file

    rng = np.random.RandomState(SEED)
    tensors = {}
    for name, shape in _weight_shapes():
        if name.endswith("norm.weight"):
            tensors[name] = np.ones(shape, dtype=np.float32)
        else:
            tensors[name] = (rng.standard_normal(shape) * _init_std(name)).astype(np.float32)
    save_file(tensors, str(out / "model.safetensors"), metadata={"format": "pt"})
    _dump_json(out / "config.json", _config())
    _dump_json(out / "generation_config.json", {
        "do_sample": False,
        "eos_token_id": SPECIAL_TOKENS.index(IM_END),
        "pad_token_id": SPECIAL_TOKENS.index(PAD_TOKEN),
    })


def parameter_count() -> int:
    """Number of weights in the tiny model (without building it)."""
    total = 0
    for _, shape in _weight_shapes():
        n = 1
        for d in shape:
            n *= d
        total += n
    return total
