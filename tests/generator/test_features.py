"""Features (INSTINCT): the prompt text, left-padded batches against unpadded forwards, errors."""

from __future__ import annotations

import pytest
import torch

from izero.errors import GeneratorError
from izero.generator import FeatureRequest, InstructionGenerator, feature_prompt_text
from izero.hf import TINY_ARCHS

from .conftest import DEMOS_A, DEMOS_B, DEMOS_C, z_point

ATOL = 1e-5


def test_feature_prompt_is_instincts_text() -> None:
    # INSTINCT: init_prompt "\n" + "[full_DEMO]\n\nThe instruction was to", demos
    # "Input: [INPUT]\nOutput: [OUTPUT]" joined by "\n\n" (see izero/generator/features.py).
    assert feature_prompt_text((("cat", "cats"), ("12 7", "19"))) == (
        "\nInput: cat\nOutput: cats\n\nInput: 12 7\nOutput: 19\n\nThe instruction was to"
    )


@pytest.fixture(scope="module", params=TINY_ARCHS)
def engine(request: pytest.FixtureRequest) -> InstructionGenerator:
    return InstructionGenerator(model=f"tiny:{request.param}", device="cpu", dtype="float32")


def _requests() -> list[FeatureRequest]:
    demos = (DEMOS_C, DEMOS_A, DEMOS_B, DEMOS_A, DEMOS_C, DEMOS_B)  # three prompt lengths
    return [
        FeatureRequest(demos=d, z=z_point(k), projection_seed=k % 2) for k, d in enumerate(demos)
    ]


def _unpadded(engine: InstructionGenerator, request: FeatureRequest) -> torch.Tensor:
    """Reference: one unpadded row through the whole causal LM (no mask, default positions)."""
    ids = engine.tokenizer(feature_prompt_text(request.demos))["input_ids"]
    emb = engine.model.get_input_embeddings()(torch.tensor(ids))
    row = torch.cat([engine.soft_prompt(request.z, request.projection_seed), emb])[None]
    with torch.inference_mode():
        out = engine.model(inputs_embeds=row, output_hidden_states=True)
    return out.hidden_states[-1][0, -1], out.logits[0, -1]


def test_left_padded_batch_equals_unpadded_forward(engine: InstructionGenerator) -> None:
    reqs = _requests()
    lengths = {len(engine.feature_token_ids(r.demos)) for r in reqs}
    assert len(lengths) == 3  # the batch really is left-padded
    feats = engine.features(reqs)
    assert feats.shape == (len(reqs), engine.hidden_size) and feats.dtype == torch.float32
    head = engine.model.get_output_embeddings()
    for row, r in zip(feats, reqs, strict=True):
        hidden, logits = _unpadded(engine, r)
        torch.testing.assert_close(row, hidden, atol=ATOL, rtol=0)
        # The feature is what the LM head reads: the state after the model's last norm.
        torch.testing.assert_close(head(row), logits, atol=1e-4, rtol=0)


def test_features_do_not_depend_on_batching(engine: InstructionGenerator) -> None:
    reqs = _requests()
    together = engine.features(reqs)
    small = InstructionGenerator(
        model_and_tokenizer=(engine.model, engine.tokenizer), batch_size=2, device="cpu"
    )
    torch.testing.assert_close(small.features(reqs), together, atol=ATOL, rtol=0)
    alone = torch.stack([engine.features([r])[0] for r in reversed(reqs)][::-1])
    torch.testing.assert_close(alone, together, atol=ATOL, rtol=0)
    # The soft prompt and the projection seed change the feature; the demos do too.
    assert not torch.allclose(together[1], together[3])  # same demos, other z and seed
    assert reqs[1].projection_seed == 1
    other_seed = FeatureRequest(demos=DEMOS_A, z=z_point(1), projection_seed=0)
    assert not torch.allclose(engine.features([other_seed])[0], together[1])
    assert engine.features([]).shape == (0, engine.hidden_size)


def test_feature_prompt_tokens_start_with_bos_and_no_chat_template() -> None:
    gen = InstructionGenerator(model="tiny:llama", device="cpu")
    ids = gen.feature_token_ids(DEMOS_B)
    assert ids[0] == gen.tokenizer.bos_token_id
    text = gen.tokenizer.decode(ids, skip_special_tokens=False)
    assert text == "<s>" + feature_prompt_text(DEMOS_B)  # no chat template around it
    assert gen.prompt_token_ids(DEMOS_B) != ids  # generation uses the chat template


def test_feature_request_validation() -> None:
    with pytest.raises(GeneratorError, match="empty"):
        FeatureRequest(demos=(), z=z_point(0))
    with pytest.raises(GeneratorError, match="NaN"):
        FeatureRequest(demos=DEMOS_A, z=(float("inf"),) * 10)
    with pytest.raises(GeneratorError, match="None"):
        FeatureRequest(demos=DEMOS_A, z=None)  # type: ignore[arg-type]
    gen = InstructionGenerator(model="tiny:llama", device="cpu")
    with pytest.raises(GeneratorError, match="n x 10"):
        gen.features([FeatureRequest(demos=DEMOS_A, z=(0.1,) * 3)])
    with pytest.raises(GeneratorError, match="FeatureRequest"):
        gen.features([object()])  # type: ignore[list-item]
