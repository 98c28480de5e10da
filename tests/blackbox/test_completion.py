"""Free completions (an LLM proposing instructions) and the simulated server's proposals.

Real HTTP against the simulated server on 127.0.0.1: per-call sampling parameters reach the
server in the request body (its proposals depend on them) and key the response cache.
"""

from __future__ import annotations

import asyncio
import collections
import json
import subprocess

import pytest

from izero.blackbox.completion import SamplingParams
from izero.blackbox.config import EndpointConfig
from izero.blackbox.errors import BudgetExhaustedError
from izero.blackbox.pool import EndpointScorer, ScoringPool
from izero.blackbox.proposal_prompts import build_forward_prompt, parse_forward_prompt
from izero.blackbox.simulated import SimulatedModel, max_in_window
from izero.blackbox.simulated_proposer import SimulatedProposer

from .conftest import MODEL, SECRET_KEY

#: Example 1 of APE's experiments/data/instruction_induction/induction_input/sum.json, verbatim.
APE_SUM_PROMPT = (
    "I gave a friend an instruction and five inputs. The friend read the instruction and wrote "
    "an output for every one of the inputs.\nHere are the input-output pairs:\n\n"
    "Input: 7 84\nOutput: 91\n\nInput: 52 71\nOutput: 123\n\nInput: 8 64\nOutput: 72\n\n"
    "Input: 76 99\nOutput: 175\n\nInput: 22 81\nOutput: 103\n\nThe instruction was"
)


def _config(server, **overrides) -> EndpointConfig:
    options = {
        "base_url": server.base_url,
        "model": MODEL,
        "api_key": SECRET_KEY,
        "backoff_base_s": 0.01,
        "backoff_cap_s": 0.05,
        "timeout_s": 5.0,
    }
    options.update(overrides)
    return EndpointConfig(**options)


def _complete(config, prompts, params, *, cache_dir=None):
    async def go():
        scorer = EndpointScorer(config, cache_dir=cache_dir, seed=0)
        try:
            return await scorer.complete(prompts, params)
        finally:
            await scorer.close()

    return asyncio.run(go())


def _demos(task, start=0, n=5):
    return [(ex.input, ex.output) for ex in task.induce[start : start + n]]


def test_forward_template_is_apes_text_exactly():
    demos = [("7 84", "91"), ("52 71", "123"), ("8 64", "72"), ("76 99", "175"), ("22 81", "103")]
    assert build_forward_prompt(demos) == APE_SUM_PROMPT
    assert parse_forward_prompt(APE_SUM_PROMPT) == demos
    three = build_forward_prompt(demos[:3])
    assert three.startswith("I gave a friend an instruction and three inputs. ")
    assert parse_forward_prompt(three) == demos[:3]
    multiline = [("\nList: pear apple\n", "apple pear"), ("a\n\nb", "Output: c")]
    assert parse_forward_prompt(build_forward_prompt(multiline)) == multiline
    assert parse_forward_prompt("Add the numbers.\n\nInput: 1 2\nOutput:") is None
    with pytest.raises(ValueError, match="at least one"):
        build_forward_prompt([])


def test_sampling_params_are_sent_and_key_the_cache(make_server, sum_task, tmp_path):
    server = make_server()
    prompt = build_forward_prompt(_demos(sum_task))
    params = [SamplingParams(temperature=0.9, max_tokens=40, seed=s) for s in range(6)]
    first = _complete(_config(server), [prompt] * 6, params, cache_dir=tmp_path)
    assert first.calls == 6 and first.cache_hits == 0 and first.n_failed == 0
    assert server.stats()["n_requests"] == 6
    # the server saw each seed: one prompt, six seeds, several different proposals
    assert len(set(first.texts)) >= 3
    # a repeat (a resumed run) pays nothing and gets the same texts
    again = _complete(_config(server), [prompt] * 6, params, cache_dir=tmp_path)
    assert server.stats()["n_requests"] == 6
    assert again.texts == first.texts and again.calls == 0 and again.cache_hits == 6
    assert again.cost == 0 and again.prompt_tokens == 0
    # another temperature, length or seed is another request
    for changed in (
        SamplingParams(temperature=0.5, max_tokens=40, seed=0),
        SamplingParams(temperature=0.9, max_tokens=41, seed=0),
        SamplingParams(temperature=0.9, max_tokens=40, seed=6),
        SamplingParams(temperature=0.9, max_tokens=40, seed=0, top_p=0.9),
    ):
        _complete(_config(server), [prompt], [changed], cache_dir=tmp_path)
    assert server.stats()["n_requests"] == 10
    # greedy decoding ignores the seed, as a real model does
    greedy = [SamplingParams(temperature=0.0, max_tokens=40, seed=s) for s in range(4)]
    texts = _complete(_config(server), [prompt] * 4, greedy).texts
    assert len(set(texts)) == 1
    # scoring queries are not proposals: the server still answers them as the black box
    plain = _complete(_config(server), ["Add the two numbers\n\nInput: 2 3\nOutput:"], greedy[:1])
    assert plain.texts[0] in {"5", "6", "7", "8", "9", "10", "11", "12", "13", "14"}


def test_token_estimate_uses_the_calls_max_tokens(make_server, sum_task):
    """The budget reserves prompt + the call's own ``max_tokens``: a cap that leaves room for
    a short proposal but not for the endpoint's default length lets the short one through."""
    server = make_server()
    prompt = build_forward_prompt(_demos(sum_task))
    est_prompt = len(prompt) // 3 + 8
    config = _config(server, max_tokens=2000, max_total_tokens=est_prompt + 100)
    result = _complete(config, [prompt], [SamplingParams(temperature=0.9, max_tokens=20, seed=1)])
    assert result.calls == 1
    with pytest.raises(BudgetExhaustedError, match="max_total_tokens"):
        _complete(config, [prompt], [SamplingParams(temperature=0.9, max_tokens=500, seed=1)])


def test_simulated_proposals_follow_task_seed_and_temperature(sum_task, antonym_task):
    model = SimulatedModel([sum_task, antonym_task], seed=0)
    proposer = SimulatedProposer(model, seed=0)
    demos = _demos(sum_task)
    assert proposer.task_of(demos) == "sum"
    assert proposer.task_of(_demos(antonym_task, n=3)) == "antonyms"
    assert proposer.task_of([("never seen", "x")]) is None

    def relevance(text):
        return model.relevance(text, "sum")

    def sample(t, n=200):
        return [proposer.propose(demos, temperature=t, seed=s) for s in range(n)]

    warm, hot = sample(0.9), sample(2.0)
    assert sample(0.9) == warm  # deterministic per seed
    on_warm = sum(relevance(p) > 0 for p in warm) / len(warm)
    on_hot = sum(relevance(p) > 0 for p in hot) / len(hot)
    assert 0.45 < on_warm < 0.85 and on_hot < on_warm  # some on-task, some not
    assert any(relevance(p) == 1.0 for p in warm)  # some name enough keywords to score best
    assert any(model.relevance(p, "antonyms") > 0 for p in warm)  # some describe another task
    styles = collections.Counter(
        "to"
        if p.startswith("to ")
        else "echo"
        if p.startswith("The instruction")
        else "run"
        if "\nInput: " in p
        else "plain"
        for p in warm
    )
    assert set(styles) == {"to", "echo", "run", "plain"}
    # a different demo subset is a different prompt
    assert sample(0.9, 20) != [
        proposer.propose(_demos(sum_task, 5), temperature=0.9, seed=s) for s in range(20)
    ]


def test_pool_completions_share_the_limit_and_the_budget(ray_local, make_server, sum_task):
    server = make_server(rpm=600, window_s=2.0, latency_s=0.02)
    prompt = build_forward_prompt(_demos(sum_task))
    params = [SamplingParams(temperature=0.9, max_tokens=30, seed=s) for s in range(30)]
    pool = ScoringPool(_config(server, rpm=600, rate_margin=0.05, max_calls=24), num_workers=2)
    try:
        with pytest.raises(BudgetExhaustedError, match="max_calls=24"):
            asyncio.run(pool.complete([prompt] * 30, params, tag={"split": "propose"}))
        usage = pool.usage()
    finally:
        pool.close()
    stats = server.stats()
    assert stats["by_status"] == {"200": 24} and usage.calls == 24
    assert max_in_window(stats["times"], 2.0) <= 20  # 600 per minute as 20 per 2 s


def test_standalone_server_answers_a_proposal_prompt(tmp_path):
    """``python -m izero.blackbox.simulated --tasks sum`` answers APE's prompt on-task."""
    import sys
    import time
    import urllib.request

    proc = subprocess.Popen(
        [sys.executable, "-m", "izero.blackbox.simulated", "--tasks", "sum", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        line = proc.stdout.readline()
        url = line.split(" at ")[1].split()[0]
        answers = []
        for seed in range(8):
            body = {
                "model": "izero-sim",
                "messages": [{"role": "user", "content": APE_SUM_PROMPT}],
                "temperature": 0.0 if seed == 0 else 1.0,
                "seed": seed,
            }
            request = urllib.request.Request(
                url + "/chat/completions",
                data=json.dumps(body).encode(),
                headers={"Content-Type": "application/json"},
            )
            with urllib.request.urlopen(request, timeout=30) as r:
                answers.append(json.loads(r.read())["choices"][0]["message"]["content"])
            time.sleep(0.01)
    finally:
        proc.terminate()
        proc.wait(30)
    assert len(set(answers)) >= 4
    assert any(w in " ".join(answers) for w in ("sum", "add", "plus", "addition", "total"))
