"""The client against the simulated server over real sockets on 127.0.0.1."""

from __future__ import annotations

import asyncio
import logging
import pickle

import pytest

from izero.blackbox.config import EndpointConfig
from izero.blackbox.errors import (
    AuthenticationError,
    BadRequestError,
    BudgetExhaustedError,
    ContextLengthError,
    InsufficientQuotaError,
    NotFoundError,
)
from izero.blackbox.pool import EndpointScorer
from izero.blackbox.ratelimit import LocalLimiter
from izero.blackbox.simulated import max_in_window

from .conftest import MODEL, SECRET_KEY, exact_scorer

GOOD = "Add the two numbers"


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


def _score(config, instruction, examples, *, cache_dir=None, scorer=exact_scorer):
    async def go():
        scorer_ = EndpointScorer(config, cache_dir=cache_dir, scorer=scorer, seed=0)
        try:
            return await scorer_.score(instruction, examples, "exact_match"), scorer_.stats
        finally:
            await scorer_.close()

    return asyncio.run(go())


def test_scores_follow_the_instruction(make_server, sum_task):
    server = make_server(seed=3)
    examples = sum_task.induce[:40]
    good, _ = _score(_config(server), GOOD, examples)
    bad, _ = _score(_config(server), "Translate the sentence into French", examples)
    assert good.n_answered == bad.n_answered == 40
    assert good.mean > bad.mean + 0.4
    assert good.calls == 40 and good.prompt_tokens > 0 and good.completion_tokens > 0
    assert len(good.call_records) == 40 and all(r.status == "200" for r in good.call_records)
    assert server.stats()["by_status"] == {"200": 80}


def test_requests_stay_within_the_limit_in_every_window(make_server, sum_task):
    # 600 RPM enforced as 20 per 2-second window (a per-minute limit over a short window)
    server = make_server(rpm=600, window_s=2.0, latency_s=0.05)
    result, stats = _score(_config(server, rpm=600, rate_margin=0.05), GOOD, sum_task.induce[:45])
    assert result.n_answered == 45
    times = server.stats()["times"]
    assert len(times) == 45
    assert max_in_window(times, 2.0) <= 20
    assert stats.rate_limited == 0


def test_tokens_per_minute_limit_is_held(make_server, sum_task):
    server = make_server(tpm=12_000, window_s=1.0)  # 200 tokens per second
    config = _config(server, tpm=12_000, max_tokens=8, rate_margin=0.05)
    result, stats = _score(config, GOOD, sum_task.induce[:30])
    assert result.n_answered == 30
    assert stats.rate_limited == 0
    assert server.stats()["by_status"] == {"200": 30}


@pytest.mark.parametrize(
    "fault", ["500", "502", "503", "408", "409", "hang", "malformed", "truncated", "drop"]
)
def test_each_transient_fault_is_retried(make_server, sum_task, fault):
    server = make_server(fault_script=(fault, fault), hang_s=3.0)
    config = _config(server, timeout_s=0.5, max_retries=3, concurrency=1)
    examples = sum_task.induce[:3]
    result, stats = _score(config, GOOD, examples)
    assert result.n_answered == 3 and result.n_failed == 0
    assert server.stats()["n_requests"] == 5  # two faulty attempts, then three answers
    assert stats.attempts == 5 and stats.calls == 3
    assert result.call_records[0].attempts == 3
    assert result.call_records[0].attempt_statuses[-1] == "200"


def test_rate_limit_429_is_honoured_and_adopted(make_server, sum_task):
    # the server allows 300 RPM (5 per second) but the client was told 1,200
    server = make_server(rpm=300, window_s=1.0)
    result, stats = _score(_config(server, rpm=1200), GOOD, sum_task.induce[:30])
    assert result.n_answered == 30
    assert stats.rate_limited >= 1
    by_status = server.stats()["by_status"]
    assert by_status["200"] == 30
    # the x-ratelimit-limit-requests header (300) was adopted: few 429s, not a storm
    assert by_status.get("429", 0) <= 10


def test_a_lower_limit_without_headers_is_learned_from_429s(make_server, sum_task):
    # the server allows 1,200 RPM (20 per second) and says nothing of it in headers; the
    # client was told 2,400: 429 episodes slow the shared clock until it fits
    server = make_server(rpm=1200, window_s=1.0, limit_headers=False)
    config = _config(server, rpm=2400)

    async def go():
        limiter = LocalLimiter.from_config(config)
        scorer = EndpointScorer(config, limiter=limiter, scorer=exact_scorer, seed=0)
        try:
            return await scorer.score(GOOD, sum_task.induce, "exact_match"), limiter.core
        finally:
            await scorer.close()

    result, core = asyncio.run(go())
    assert result.n_answered == 100 and result.n_failed == 0
    assert core.rpm == 2400  # nothing adopted from headers
    assert core.usage().slowdowns >= 2
    by_status = server.stats()["by_status"]
    assert by_status["200"] == 100
    # it converged instead of hammering the server: far fewer 429s than answers
    assert by_status.get("429", 0) <= 15
    assert max_in_window(server.stats()["ok_times"], 1.0) <= 20


def test_failed_calls_are_failed_not_wrong(make_server, sum_task):
    server = make_server(fault_script=("503",) * 3)
    config = _config(server, max_retries=2, concurrency=1)
    examples = sum_task.induce[:5]
    result, stats = _score(config, GOOD, examples)
    assert result.scores[0] is None and result.answers[0] is None
    assert result.n_failed == 1 and result.n_answered == 4
    answered = [s for s in result.scores if s is not None]
    assert result.mean == pytest.approx(sum(answered) / 4)
    assert result.call_records[0].ok is False and result.call_records[0].status == "503"
    assert result.call_records[0].attempts == 3
    assert stats.failed == 1


def test_all_failed_gives_no_mean(make_server, sum_task):
    server = make_server(fault_rates={"503": 1.0})
    result, _ = _score(_config(server, max_retries=1), GOOD, sum_task.induce[:4])
    assert result.scores == (None,) * 4 and result.mean is None and result.calls == 0
    assert server.stats()["n_requests"] == 8


def test_no_lost_or_duplicated_results_under_faults(make_server, sum_task):
    server = make_server(
        seed=1, fault_rates={"500": 0.1, "drop": 0.05, "truncated": 0.05, "malformed": 0.05}
    )
    clean = make_server(seed=1)
    examples = sum_task.induce[:80]
    noisy, _ = _score(_config(server, max_retries=10), GOOD, examples)
    ref, _ = _score(_config(clean), GOOD, examples)
    assert noisy.answers == ref.answers  # same answer for every example, in order
    assert noisy.scores == ref.scores
    ok = [s for s, f in zip(server.stats()["statuses"], range(10**6), strict=False) if s == 200]
    assert noisy.calls == 80
    assert server.stats()["faults"]  # faults really happened
    assert len(ok) >= 80


def test_cache_hits_cost_nothing_and_persist(make_server, sum_task, tmp_path):
    server = make_server()
    config = _config(server, price_prompt_per_1k=1.0, price_completion_per_1k=2.0)
    examples = sum_task.induce[:12]
    first, _ = _score(config, GOOD, examples, cache_dir=tmp_path)
    assert first.calls == 12 and first.cost > 0
    before = server.stats()["n_requests"]
    second, _ = _score(config, GOOD, examples, cache_dir=tmp_path)  # a new process-like client
    assert server.stats()["n_requests"] == before == 12
    assert second.cache_hits == 12 and second.calls == 0 and second.cost == 0
    assert second.answers == first.answers and second.scores == first.scores
    assert all(r.cached for r in second.call_records)
    # a different parameter is a different request
    _score(_config(server, max_tokens=9), GOOD, examples[:2], cache_dir=tmp_path)
    assert server.stats()["n_requests"] == 14


@pytest.mark.parametrize(("caps", "limit"), [({"max_calls": 6}, 6), ({"max_cost": 0.06}, None)])
def test_budget_cap_stops_before_exceeding(make_server, sum_task, caps, limit):
    server = make_server()
    config = _config(server, price_prompt_per_1k=0.5, price_completion_per_1k=0.5, **caps)
    with pytest.raises(BudgetExhaustedError, match="budget cap") as info:
        _score(config, GOOD, sum_task.induce[:20])
    assert server.base_url in str(info.value) and MODEL in str(info.value)
    paid = server.stats()["by_status"].get("200", 0)
    if limit is not None:
        assert paid <= limit
    else:
        tokens = server.stats()["tokens"]
        assert tokens * 0.5 / 1000 <= caps["max_cost"]
    assert paid >= 1


def test_401_stops_at_once_with_a_clear_message(make_server, sum_task, caplog):
    server = make_server(api_key="the-right-key")
    config = _config(server, rpm=600, api_key_env="MY_ENDPOINT_KEY")
    caplog.set_level(logging.DEBUG)
    with pytest.raises(AuthenticationError) as info:
        _score(config, GOOD, sum_task.induce[:30])
    message = str(info.value)
    assert server.base_url in message and MODEL in message and "MY_ENDPOINT_KEY" in message
    assert SECRET_KEY not in message
    assert SECRET_KEY not in repr(pickle.loads(pickle.dumps(info.value)))
    assert server.stats()["n_requests"] <= 3
    assert SECRET_KEY not in caplog.text


def test_key_never_in_logs_or_results(make_server, sum_task, caplog):
    server = make_server(api_key=SECRET_KEY, fault_script=("500", "drop", "hang"), hang_s=2.0)
    caplog.set_level(logging.DEBUG)
    result, stats = _score(_config(server, timeout_s=0.5), GOOD, sum_task.induce[:6])
    assert result.n_answered == 6
    assert SECRET_KEY not in caplog.text
    assert SECRET_KEY.encode() not in pickle.dumps(result)
    assert SECRET_KEY not in repr(result) and SECRET_KEY not in repr(stats)


def test_insufficient_quota_stops_cleanly(make_server, sum_task):
    server = make_server(insufficient_quota=True)
    with pytest.raises(InsufficientQuotaError, match="quota") as info:
        _score(_config(server, rpm=600), GOOD, sum_task.induce[:20])
    assert "Fix:" in str(info.value) and SECRET_KEY not in str(info.value)
    assert server.stats()["n_requests"] <= 3


def test_wrong_model_and_context_length_stop(make_server, sum_task):
    server = make_server(max_context_tokens=40)
    with pytest.raises(NotFoundError, match=f"one of: {MODEL}$") as info:
        _score(_config(server, model="no-such-model", concurrency=1), GOOD, sum_task.induce[:3])
    assert "'no-such-model' is not served here" in str(info.value)
    with pytest.raises(ContextLengthError, match="context of 40 tokens") as info:
        _score(_config(server, max_tokens=30, concurrency=1), GOOD, sum_task.induce[:3])
    message = str(info.value)
    assert server.base_url in message and "fewer examples" in message and "\n" not in message
    # the 404 asked GET /models once; the 400 was never retried
    assert server.stats()["by_status"] == {"404": 1, "400": 1}


def test_max_completion_tokens_for_servers_that_refuse_max_tokens(make_server, sum_task):
    server = make_server(refuse_max_tokens=True)
    with pytest.raises(BadRequestError, match="max_tokens_param: max_completion_tokens"):
        _score(_config(server, concurrency=1), GOOD, sum_task.induce[:2])
    config = _config(server, max_tokens=5, max_tokens_param="max_completion_tokens")
    result, _ = _score(config, GOOD, sum_task.induce[:4])
    assert result.n_answered == 4 and server.stats()["by_status"] == {"400": 1, "200": 4}
