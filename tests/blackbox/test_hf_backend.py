"""A tiny random-weight Llama, built here from a config, as the black box in a Ray actor."""

from __future__ import annotations

import asyncio

import pytest
import ray

from izero.blackbox.hf_backend import HFBlackBoxOptions, HFScorer, create_hf_blackbox
from izero.errors import BlackBoxError, ConfigError

from .conftest import exact_scorer

CORPUS = [
    "Add the two numbers. Input: 1 2 Output: 3",
    "Write the antonym of the word. Input: hot Output: cold",
    "The instruction was to sum numbers together and answer",
]


@pytest.fixture(scope="module")
def tiny_llama_dir(tmp_path_factory):
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    path = tmp_path_factory.mktemp("tiny-llama")
    raw = Tokenizer(models.BPE(unk_token="[UNK]"))
    raw.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(
        vocab_size=300,
        special_tokens=["[PAD]", "[UNK]", "[BOS]", "[EOS]"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    raw.train_from_iterator(CORPUS * 10, trainer)
    from tokenizers import decoders

    raw.decoder = decoders.ByteLevel()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=raw,
        pad_token="[PAD]",
        unk_token="[UNK]",
        bos_token="[BOS]",
        eos_token="[EOS]",
    )
    tokenizer.save_pretrained(path)
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    LlamaForCausalLM(config).save_pretrained(path)
    return path


def test_options_are_validated():
    with pytest.raises(ConfigError, match="dtype"):
        HFBlackBoxOptions(model_path="x", dtype="float8")


def test_a_model_that_cannot_load_says_why(ray_local, sum_task, tmp_path):
    options = HFBlackBoxOptions(model_path=str(tmp_path / "no-such-model"))
    scorer = HFScorer(options, scorer=exact_scorer)
    try:
        with pytest.raises(BlackBoxError) as info:
            asyncio.run(scorer.score("Add the two numbers", sum_task.induce[:2], "exact_match"))
    finally:
        scorer.close()
    text = str(info.value)
    assert "could not load the local black-box model" in text and "no-such-model" in text
    assert "Fix: give a local folder" in text
    # close() stopped the actor the scorer had started
    with pytest.raises(ray.exceptions.RayActorError):
        ray.get(scorer.actor.batch_sizes.remote(), timeout=30)


def test_local_model_scores_in_batches(ray_local, tiny_llama_dir, sum_task, tmp_path):
    options = HFBlackBoxOptions(
        model_path=str(tiny_llama_dir), max_new_tokens=4, max_batch_size=8, batch_wait_s=0.05
    )
    actor = create_hf_blackbox(options, num_cpus=0)
    examples = sum_task.induce[:8]
    scorer = HFScorer(options, actor=actor, cache_dir=tmp_path, scorer=exact_scorer)
    try:
        first = asyncio.run(scorer.score("Add the two numbers", examples, "exact_match"))
        again = asyncio.run(scorer.score("Add the two numbers", examples, "exact_match"))
    finally:
        scorer.close()
    assert first.n_answered == 8 and first.n_failed == 0
    assert all(isinstance(a, str) for a in first.answers)
    assert all(s in (0.0, 1.0) for s in first.scores)
    assert first.prompt_tokens > 0 and first.calls == 8
    sizes = ray_local.get(actor.batch_sizes.remote())
    assert sum(sizes) == 8 and max(sizes) > 1  # answered together, not one by one
    # the second run is served from the cache: same answers, no new generation
    assert again.answers == first.answers and again.cache_hits == 8 and again.calls == 0
    assert sum(ray_local.get(actor.batch_sizes.remote())) == 8
    # a batch answers exactly like one-by-one decoding (left padding is handled)
    prompts = [f"Add the two numbers\n\nInput: {ex.input}\nOutput:" for ex in examples[:3]]
    batched = ray_local.get(actor.generate.remote(prompts))
    single = [ray_local.get(actor.generate.remote([p]))[0] for p in prompts]
    assert [b[0] for b in batched] == [s[0] for s in single]
    ray_local.kill(actor)
