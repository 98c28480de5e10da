"""Query templates: the original InstructZero strings, parsing, and the simulated server and the
response cache under more than one template, over real sockets on 127.0.0.1."""

from __future__ import annotations

import asyncio

import pytest

from izero.blackbox.config import EndpointConfig
from izero.blackbox.pool import EndpointScorer
from izero.blackbox.prompts import DEFAULT_QUERY, QueryTemplate
from izero.blackbox.simulated import UNKNOWN_ANSWER
from izero.config import PromptsConfig
from izero.driver.stages import query_templates
from izero.errors import ConfigError

from .conftest import MODEL, SECRET_KEY, exact_scorer

GOOD = "Add the two numbers"
ORIGINAL = query_templates(PromptsConfig.from_preset("instructzero-original"))
IZERO = query_templates(PromptsConfig())


def _original_query(eval_template: str, prompt: str, input_: str) -> str:
    """What the original code sends: EvalTemplate.fill(prompt, input, output='') (template.py)
    and then ``p.replace('[APE]', '').strip()`` as the user message (llm.py:403)."""
    filled = (
        eval_template.replace("[PROMPT]", prompt)
        .replace("[full_DEMO]", "")
        .replace("[INPUT]", input_)
        .replace("[OUTPUT]", "")
    )
    return filled.replace("[APE]", "").strip()


# The original's eval templates, as written in run_instructzero.py at 911f019.
ORIGINAL_DEV = "Instruction: [PROMPT]\n\nInput: [INPUT]\n Output: [OUTPUT]"  # RI:106
ORIGINAL_TEST = "Instruction: [PROMPT]\n\nInput: [INPUT]\n\nOUTPUT: [OUTPUT]"  # RI:239


@pytest.mark.parametrize(
    "instruction",
    ["add the numbers", " add the numbers.\n", "\nsum them up\n\nInput: 1 2\nOutput: 3", ""],
)
@pytest.mark.parametrize("input_", ["12 7", "Sentence 1: a b. Sentence 2: c. Word: a"])
def test_original_templates_render_the_original_strings(instruction, input_):
    dev = ORIGINAL["dev"].messages(instruction, input_)
    test = ORIGINAL["test"].messages(instruction, input_)
    assert dev == [{"role": "user", "content": _original_query(ORIGINAL_DEV, instruction, input_)}]
    assert test == [
        {"role": "user", "content": _original_query(ORIGINAL_TEST, instruction, input_)}
    ]


def test_original_and_izero_templates_written_out():
    raw = " add the numbers.\n"
    assert ORIGINAL["dev"].query(raw, "12 7") == (
        "Instruction:  add the numbers.\n\n\nInput: 12 7\n Output:"
    )
    assert ORIGINAL["test"].query(raw, "12 7") == (
        "Instruction:  add the numbers.\n\n\nInput: 12 7\n\nOUTPUT:"
    )
    assert IZERO["dev"] == IZERO["test"] == DEFAULT_QUERY
    assert IZERO["dev"].query(raw, "12 7") == "add the numbers.\n\nInput: 12 7\nOutput:"


@pytest.mark.parametrize("split", ["dev", "test"])
@pytest.mark.parametrize(
    "instruction",
    ["Add the two numbers", "first line\n\nInput: 3 4\n Output: 7\n\nOUTPUT: 7", "{input}"],
)
def test_parse_inverts_each_template(split, instruction):
    for template in (ORIGINAL[split], IZERO[split]):
        for input_ in ("12 7", "multi\nline\n Output: tricky", ""):
            parsed = template.parse(template.query(instruction, input_))
            assert parsed == (instruction.strip(), input_)
    assert ORIGINAL[split].parse(IZERO[split].query(GOOD, "1 2")) is None
    assert IZERO[split].parse(ORIGINAL[split].query(GOOD, "1 2")) is None


def test_system_message_comes_first():
    template = QueryTemplate(system="You answer tersely.")
    assert template.messages(GOOD, "1 2") == [
        {"role": "system", "content": "You answer tersely."},
        {"role": "user", "content": "Add the two numbers\n\nInput: 1 2\nOutput:"},
    ]


@pytest.mark.parametrize(
    ("text", "fix"),
    [
        ("Answer: {input}", "add {instruction}"),
        ("{instruction}\n\nOutput:", "add {input}"),
        ("{instruction} {input} {input}", "keep one {input}"),
        ("{instruction}\n\nInput: {inputs}\nOutput:", "'{inputs}' is not a placeholder"),
    ],
)
def test_bad_query_templates_are_refused_in_one_line(text, fix):
    with pytest.raises(ConfigError) as err:
        QueryTemplate(text)
    assert err.value.field == "prompts.query_template"
    assert fix in str(err.value) and "\n" not in str(err.value)


def _config(server) -> EndpointConfig:
    return EndpointConfig(base_url=server.base_url, model=MODEL, api_key=SECRET_KEY, timeout_s=5.0)


def _score_all(server, jobs, *, cache_dir=None):
    """Score ``(instruction, examples, template)`` jobs in turn through one scorer."""

    async def go():
        scorer = EndpointScorer(_config(server), cache_dir=cache_dir, scorer=exact_scorer, seed=0)
        try:
            return [
                await scorer.score(instr, examples, "exact_match", template=template)
                for instr, examples, template in jobs
            ]
        finally:
            await scorer.close()

    return asyncio.run(go())


def test_simulated_server_answers_queries_in_every_configured_template(make_server, sum_task):
    templates = (DEFAULT_QUERY, ORIGINAL["dev"], ORIGINAL["test"])
    server = make_server(seed=1, query_templates=templates)
    examples = sum_task.induce[:40]
    for template in templates:
        good, bad = _score_all(
            server,
            [(GOOD, examples, template), ("Translate the text into French", examples, template)],
        )
        assert good.n_answered == bad.n_answered == 40
        assert UNKNOWN_ANSWER not in good.answers + bad.answers
        assert good.mean > bad.mean + 0.4
    # A server that knows only izero's template cannot read the original's queries.
    plain = make_server(seed=1)
    (res,) = _score_all(plain, [(GOOD, examples, ORIGINAL["dev"])])
    assert set(res.answers) == {UNKNOWN_ANSWER} and res.mean == 0.0


def test_templates_never_share_cached_answers(make_server, sum_task, tmp_path):
    server = make_server(query_templates=(DEFAULT_QUERY, ORIGINAL["dev"]))
    examples = sum_task.induce[:10]
    jobs = [
        (GOOD, examples, DEFAULT_QUERY),
        (GOOD, examples, ORIGINAL["dev"]),
        (GOOD, examples, ORIGINAL["dev"]),
        (GOOD, examples, None),
    ]
    first, other, again, default = _score_all(server, jobs, cache_dir=tmp_path / "cache")
    assert (first.calls, first.cache_hits) == (10, 0)
    assert (other.calls, other.cache_hits) == (10, 0)
    assert (again.calls, again.cache_hits) == (0, 10)
    assert (default.calls, default.cache_hits) == (0, 10)
    assert server.stats()["n_requests"] == 20
