"""Tiny random-weight Hugging Face causal LMs and an offline tokenizer, for tests and demos.

Nothing here touches the network: the tokenizer is a byte-level BPE trained in-process on a small
embedded English corpus, and the models are built from configs with seeded random weights. The
same seed always gives the same weights, so tests and benchmarks are reproducible.

The tokenizer has ``<s>`` (bos), ``</s>`` (eos), ``<pad>`` (pad) and chat-role markers, and a
small chat template, so the chat-template code path of the generator is exercised by tests.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from izero.errors import GeneratorError

logger = logging.getLogger(__name__)

TINY_ARCHS: tuple[str, ...] = ("llama", "qwen2", "gpt2")
"""Architectures :func:`build_tiny_model` can build."""

TINY_VOCAB_SIZE = 1024
"""Target vocabulary size of the offline BPE tokenizer (special tokens included)."""

TINY_VOCAB_MULTIPLE = 64
"""Model vocabularies are padded to a multiple of this, as real checkpoints do; the spare rows also
leave room for tokens a model-specific tokenizer class may add when a saved tiny model is reloaded
(e.g. Qwen2's ``<|endoftext|>``)."""

TINY_MAX_POSITIONS = 2048

TINY_INIT_STD = 0.3
"""Standard deviation of the random weights (``initializer_range``). The usual 0.02 makes tiny
random models (GPT-2 especially) repeat one token forever whatever the prompt, which would make
tests of batching and soft prompts vacuous; 0.3 gives varied continuations with clear argmax
margins."""
"""Context length of tiny models (tokens)."""

TINY_SAVE_HIDDEN_SIZE = 128
"""Hidden size of models :func:`save_tiny_model` writes: 4 heads of 32 dimensions, the smallest
head vLLM's CPU attention supports (16, the in-memory default's, fails at the first request)."""

BOS_TOKEN = "<s>"
EOS_TOKEN = "</s>"
PAD_TOKEN = "<pad>"
CHAT_TOKENS: tuple[str, ...] = ("<|system|>", "<|user|>", "<|assistant|>", "<|end|>")

TINY_CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "<|{{ message['role'] }}|>\n{{ message['content'] }}<|end|>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)
"""A minimal chat template in the style of Zephyr/Phi: role markers, one ``<|end|>`` per turn."""

_CORPUS = """\
The instruction was to add the two numbers together.
The instruction was to write the first letter of the word.
The instruction was to translate the English word into Spanish.
The instruction was to sort the words in alphabetical order.
The instruction was to find the antonym of the given word.
The instruction was to write the plural form of the noun.
The instruction was to subtract the second number from the first.
The instruction was to say whether the two sentences mean the same thing.
I gave a friend an instruction and five inputs. The friend read the instruction and wrote an
output for every one of the inputs. Here are the input-output pairs:
Input: cat Output: cats
Input: apple Output: a
Input: 12 7 Output: 19
Input: happy Output: sad
Input: The quick brown fox jumps over the lazy dog. Output: dog lazy over quick
Input: one hundred and twenty three Output: 123
Below is an instruction that describes a task. Write a response that completes the request.
A soft prompt is a short sequence of continuous embeddings placed before the text of a prompt.
Bayesian optimisation proposes the next points with expected improvement under a Gaussian
process. The black box model answers every question of the development set under the instruction,
and the score is the share of answers that match the reference answers exactly.
Numbers: zero one two three four five six seven eight nine ten eleven twelve twenty thirty
forty fifty sixty seventy eighty ninety hundred thousand million 0 1 2 3 4 5 6 7 8 9 10 100.
Letters: a b c d e f g h i j k l m n o p q r s t u v w x y z A B C D E F G H I J K L M N O P Q R
S T U V W X Y Z. Punctuation: , . ; : ! ? ' " ( ) [ ] { } - _ / + = * & % $ # @.
Words: write answer question sentence word letter number list sort reverse count compare
translate rhyme cause effect concept sentiment positive negative larger smaller first second
last every each the a an of to in on for with from by and or not is are was were be been.
Please respond with a single sentence. Output the answer only. Think step by step.
"""


@functools.lru_cache(maxsize=1)
def _tokenizer_json() -> str:
    """Train the byte-level BPE once per process and return it serialised (cheap to rebuild)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    specials = [PAD_TOKEN, BOS_TOKEN, EOS_TOKEN, *CHAT_TOKENS]
    trainer = trainers.BpeTrainer(
        vocab_size=TINY_VOCAB_SIZE,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    corpus_lines = _CORPUS.splitlines()
    tok.train_from_iterator(corpus_lines * 4, trainer=trainer)
    bos_id = tok.token_to_id(BOS_TOKEN)
    # Llama-style: a bos token in front of every encoded text (chat templates add their own).
    tok.post_processor = processors.TemplateProcessing(
        single=f"{BOS_TOKEN} $A",
        pair=f"{BOS_TOKEN} $A {BOS_TOKEN} $B",
        special_tokens=[(BOS_TOKEN, bos_id)],
    )
    return tok.to_str()


def build_tiny_tokenizer() -> Any:
    """A fresh ``PreTrainedTokenizerFast`` (byte-level BPE, ~1k tokens), built offline.

    The BPE is trained once per process; every call returns a new tokenizer object, so callers may
    change ``padding_side`` and similar settings without affecting each other. Left padding, with
    ``<pad>`` as pad token, ``<s>``/``</s>`` as bos/eos, and :data:`TINY_CHAT_TEMPLATE`.
    """
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast

    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer.from_str(_tokenizer_json()),
        bos_token=BOS_TOKEN,
        eos_token=EOS_TOKEN,
        pad_token=PAD_TOKEN,
        additional_special_tokens=list(CHAT_TOKENS),
        padding_side="left",
        model_max_length=TINY_MAX_POSITIONS,
    )
    tokenizer.chat_template = TINY_CHAT_TEMPLATE
    return tokenizer


def tiny_config(
    arch: str,
    *,
    vocab_size: int,
    hidden_size: int = 64,
    num_layers: int = 2,
    num_heads: int = 4,
    intermediate_size: int | None = None,
    max_positions: int = TINY_MAX_POSITIONS,
    bos_token_id: int | None = None,
    eos_token_id: int | None = None,
    pad_token_id: int | None = None,
    init_std: float = TINY_INIT_STD,
) -> Any:
    """A transformers config for a small model of ``arch`` (one of :data:`TINY_ARCHS`)."""
    from transformers import GPT2Config, LlamaConfig, Qwen2Config

    if arch not in TINY_ARCHS:
        raise GeneratorError(
            f"unknown tiny architecture {arch!r}; expected one of {', '.join(TINY_ARCHS)}. "
            "Fix: use e.g. model='tiny:llama'."
        )
    if hidden_size % num_heads:
        raise GeneratorError(
            f"hidden_size={hidden_size} is not divisible by num_heads={num_heads}; "
            "pick a multiple of num_heads."
        )
    intermediate = intermediate_size or 4 * hidden_size
    special = {"bos_token_id": bos_token_id, "eos_token_id": eos_token_id}
    if arch == "gpt2":
        return GPT2Config(
            vocab_size=vocab_size,
            n_positions=max_positions,
            n_embd=hidden_size,
            n_layer=num_layers,
            n_head=num_heads,
            n_inner=intermediate,
            initializer_range=init_std,
            pad_token_id=pad_token_id,
            **special,
        )
    common = {
        "vocab_size": vocab_size,
        "hidden_size": hidden_size,
        "intermediate_size": intermediate,
        "num_hidden_layers": num_layers,
        "num_attention_heads": num_heads,
        "num_key_value_heads": max(1, num_heads // 2),
        "max_position_embeddings": max_positions,
        "tie_word_embeddings": False,
        "initializer_range": init_std,
        "pad_token_id": pad_token_id,
        **special,
    }
    if arch == "llama":
        return LlamaConfig(**common)
    return Qwen2Config(**common)


def build_tiny_model(
    arch: str,
    *,
    seed: int = 0,
    hidden_size: int = 64,
    num_layers: int = 2,
    num_heads: int = 4,
    intermediate_size: int | None = None,
    tokenizer: Any | None = None,
) -> Any:
    """A random-weight causal LM of ``arch`` in fp32 on CPU, in eval mode.

    Args:
        arch: ``"llama"``, ``"qwen2"`` or ``"gpt2"``.
        seed: weights are a pure function of ``(arch, seed, sizes)``; the global RNG is untouched.
        hidden_size, num_layers, num_heads, intermediate_size: model sizes (intermediate defaults
            to ``4 * hidden_size``).
        tokenizer: the tokenizer whose vocabulary the model must cover; ``None`` means
            :func:`build_tiny_tokenizer`.
    """
    from transformers import AutoModelForCausalLM

    tok = tokenizer if tokenizer is not None else build_tiny_tokenizer()
    config = tiny_config(
        arch,
        vocab_size=-(-len(tok) // TINY_VOCAB_MULTIPLE) * TINY_VOCAB_MULTIPLE,
        hidden_size=hidden_size,
        num_layers=num_layers,
        num_heads=num_heads,
        intermediate_size=intermediate_size,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.eval()
    logger.debug("built tiny %s model (seed=%d, %s)", arch, seed, _size_note(model))
    return model


def parse_tiny_id(model_id: str) -> tuple[str, dict[str, int]]:
    """Split ``"tiny:llama?hidden_size=128&num_layers=2"`` into ``("llama", {...})``.

    Allowed options: ``seed``, ``hidden_size``, ``num_layers``, ``num_heads``,
    ``intermediate_size`` (integers).
    """
    allowed = ("seed", "hidden_size", "num_layers", "num_heads", "intermediate_size")
    body = model_id.removeprefix("tiny:")
    arch, _, query = body.partition("?")
    options: dict[str, int] = {}
    for part in filter(None, query.split("&")):
        key, sep, value = part.partition("=")
        if not sep or key not in allowed or not value.lstrip("-").isdigit():
            raise GeneratorError(
                f"bad option {part!r} in tiny model id {model_id!r}; expected key=integer with "
                f"key in {', '.join(allowed)}, e.g. 'tiny:llama?hidden_size=128&num_layers=2'."
            )
        options[key] = int(value)
    if arch not in TINY_ARCHS:
        raise GeneratorError(
            f"unknown tiny model {model_id!r}; expected 'tiny:<arch>' with arch in "
            f"{', '.join(TINY_ARCHS)}."
        )
    return arch, options


def build_tiny(model_id: str) -> tuple[Any, Any]:
    """``(model, tokenizer)`` for a ``tiny:...`` model id (see :func:`parse_tiny_id`)."""
    arch, options = parse_tiny_id(model_id)
    tokenizer = build_tiny_tokenizer()
    model = build_tiny_model(arch, tokenizer=tokenizer, **options)
    return model, tokenizer


def save_tiny_model(arch: str, directory: str | Path, *, seed: int = 0, **sizes: int) -> Path:
    """Save a tiny ``arch`` model (seeded random weights) and its tokenizer, with its chat
    template, to ``directory`` (``save_pretrained``), so it loads like any local HF model and
    serves from vLLM. ``sizes``: as :func:`build_tiny_model`; the hidden size defaults to
    :data:`TINY_SAVE_HIDDEN_SIZE` (vLLM's CPU attention needs heads of >= 32 dimensions).
    Returns the folder."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tiny_tokenizer()
    sizes.setdefault("hidden_size", TINY_SAVE_HIDDEN_SIZE)
    model = build_tiny_model(arch, seed=seed, tokenizer=tokenizer, **sizes)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def _size_note(model: Any) -> str:
    n = sum(p.numel() for p in model.parameters())
    return f"{n / 1e6:.2f}M parameters"


def config_summary(config: Any) -> Mapping[str, Any]:
    """The sizes of a transformers config, for logs and benchmark tables."""
    keys = ("model_type", "hidden_size", "num_hidden_layers", "vocab_size", "n_embd", "n_layer")
    return {k: getattr(config, k) for k in keys if hasattr(config, k)}


def main(argv: list[str] | None = None) -> int:
    """``python -m izero.hf.tiny --save DIR --arch llama [--seed N]``: save a tiny model."""
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m izero.hf.tiny", description="Save a tiny random-weight model to a folder."
    )
    parser.add_argument("--save", required=True, metavar="DIR", help="folder to write")
    parser.add_argument("--arch", default="llama", choices=TINY_ARCHS)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    out = save_tiny_model(args.arch, args.save, seed=args.seed)
    print(out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
