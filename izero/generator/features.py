"""The prompt whose last-token hidden state is a soft prompt's feature vector (INSTINCT).

INSTINCT (Lin et al., ICML 2024; github xqlin98/INSTINCT, commit 10edbb3, Induction/experiments/)
represents a soft prompt by the open LLM's final-layer hidden state of the last token of
``[A z; tokens of "\\n" + demos + "\\n\\nThe instruction was to"]``:

- ``init_prompt = ['\\n']`` and ``prompt_gen_template = "[full_DEMO]\\n\\nThe instruction was
  to"`` (run_neural_bandits.py:282-283); ``init_token = init_prompt[0] + init_qa[0]``
  (run_neural_bandits.py:79), so the text starts with one newline;
- demonstrations ``"Input: [INPUT]\\nOutput: [OUTPUT]"`` (run_neural_bandits.py:280) joined by
  ``"\\n\\n"`` (APE's ``DemosTemplate`` delimiter, automatic_prompt_engineer/template.py:83-99),
  5 of them (run_neural_bandits.py:289, 310-314);
- the text is tokenized with the tokenizer's defaults (``self.tokenizer(self.init_token)``, so a
  Llama tokenizer puts its bos token first; no chat template) and its embeddings follow the
  ``n_prompt_tokens`` soft-prompt rows (run_neural_bandits.py:145-166);
- the feature is ``self.model(...)[0]`` (the base model's output, after its final norm) at the
  last position (LlamaForMLPRegression.py:646-675).

izero computes the same thing in left-padded batches with an attention mask (position ids from
the mask, so GPT-2's learned positions are those of the unpadded prompt); the last column is
then every row's last real token.
"""

from __future__ import annotations

from collections.abc import Sequence

from izero.generator.prompts import (
    DEMO_SEPARATOR,
    DEMO_TEMPLATE,
    PROMPT_TEMPLATE,
    PromptTemplate,
    format_demos,
)

FEATURE_PREFIX = "\n"
"""INSTINCT's ``init_prompt``: one newline between the soft prompt and the demonstrations."""

FEATURE_TEMPLATE = PromptTemplate(
    demo_template=DEMO_TEMPLATE,
    demo_separator=DEMO_SEPARATOR,
    prompt_template=PROMPT_TEMPLATE,
    use_chat_template=False,
)
"""INSTINCT's demonstrations and question (the same text as InstructZero's, never chat-wrapped)."""


def feature_prompt_text(demos: Sequence[tuple[str, str]]) -> str:
    """The text after the soft prompt: ``"\\n" + demos + "\\n\\nThe instruction was to"``.

    Tokenize it with the tokenizer's default special tokens (a bos token where the tokenizer
    adds one), as INSTINCT does.
    """
    body = FEATURE_TEMPLATE.prompt_template.format(demos=format_demos(demos, FEATURE_TEMPLATE))
    return FEATURE_PREFIX + body
