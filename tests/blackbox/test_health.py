"""Endpoint health: an endpoint that answers nothing is held and probed, not retried to death.

The core is tested with a fake clock; the client and the pool over real sockets against a
simulated server that is stopped (a closed port) and started again on the same port.
"""

from __future__ import annotations

import asyncio
import pickle
import threading
import time

import pytest

from izero.blackbox.config import EndpointConfig
from izero.blackbox.health import (
    ANSWERED,
    PROBE_BASE_S,
    PROBE_CAP_S,
    UNSENT,
    EndpointUnavailableError,
    HealthClient,
    HealthCore,
    LocalHealth,
)
from izero.blackbox.pool import EndpointScorer, ScoringPool
from izero.blackbox.simulated import SimulatedOptions, SimulatedServer
from tests.ports import quiet_port

from .conftest import MODEL, SECRET_KEY, exact_scorer

GOOD = "Add the two numbers"


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _core(clock: Clock, **kw) -> HealthCore:
    options = {"endpoint": "http://x/v1 (model m)", "allowance_s": 60.0, "probe_timeout_s": 20.0}
    return HealthCore(**{**options, **kw}, clock=clock)


def _fail(core: HealthCore, n: int, kind: str = "connection", probe: bool = False) -> None:
    core.observe([(kind, probe)] * n)


def test_a_few_faults_are_not_an_outage():
    clock = Clock()
    core = _core(clock)
    clock.now += 10
    for _ in range(50):  # faults between answers, however many, never trip
        _fail(core, 4, "503")
        core.observe([(ANSWERED, False)])
    assert not core.view().outage
    # 429s, 4xx and malformed bodies are answers from a live server
    _fail(core, 4)
    core.observe([("429", False), ("malformed", False), ("404", False)])
    _fail(core, 4)
    assert not core.view().outage and core.permit() == ("go", 0.0)


def test_a_streak_trips_only_when_nothing_was_answered_for_a_while():
    clock = Clock()
    core = _core(clock)
    core.observe([(ANSWERED, False)])
    _fail(core, 20)  # an instant burst right after an answer: other workers may be fine
    assert not core.view().outage
    clock.now += 2.5
    _fail(core, 1, "timeout")
    view = core.view()
    assert view.outage and view.epoch == 1
    line = view.line()
    assert "20 connection errors, 1 timeouts" in line and "nothing answered for 0m02s" in line


def test_probes_back_off_and_an_answer_ends_the_outage():
    clock = Clock()
    core = _core(clock, allowance_s=1000.0)
    clock.now += 5
    _fail(core, 5)
    assert core.permit() == ("wait", pytest.approx(PROBE_BASE_S))
    clock.now += PROBE_BASE_S
    assert core.permit() == ("probe", 0.0)
    assert core.permit()[0] == "wait"  # one probe at a time
    _fail(core, 3)  # attempts sent before the outage come back failed: they are no probes
    assert core.permit()[0] == "wait"
    waits = []
    for _ in range(6):
        _fail(core, 1, probe=True)
        waits.append(core.next_probe_at - clock.now)
        clock.now = core.next_probe_at
        assert core.permit() == ("probe", 0.0)
    assert waits == [2.0, 4.0, 8.0, 16.0, PROBE_CAP_S, PROBE_CAP_S]
    core.observe([(ANSWERED, True)])
    assert core.permit() == ("go", 0.0) and not core.view().outage
    # the next outage starts its backoff afresh
    clock.now += 10
    _fail(core, 5)
    assert core.view().epoch == 2 and core.next_probe_at == clock.now + PROBE_BASE_S


def test_an_unsent_or_lost_probe_lets_the_next_one_through():
    clock = Clock()
    core = _core(clock, probe_timeout_s=20.0)
    clock.now += 5
    _fail(core, 5)
    clock.now += PROBE_BASE_S
    assert core.permit()[0] == "probe"
    core.observe([(UNSENT, True)])  # the probe's call was cancelled before it was sent
    assert core.permit()[0] == "probe"
    clock.now += 19.0
    assert core.permit()[0] == "wait"
    clock.now += 1.5  # never reported: presumed failed, the next probe after its backoff
    assert core.permit()[0] == "wait"
    clock.now = core.next_probe_at
    assert core.permit()[0] == "probe"


def test_the_allowance_ends_in_one_line_naming_endpoint_failure_and_fix():
    clock = Clock()
    core = _core(clock, allowance_s=60.0)
    clock.now += 5
    _fail(core, 5, "503")
    started = clock.now
    probes = 0
    with pytest.raises(EndpointUnavailableError) as info:
        while True:
            decision, wait = core.permit()
            if decision == "probe":
                probes += 1
                _fail(core, 1, "503", probe=True)
            else:
                clock.now += wait
    assert clock.now - started == pytest.approx(60.0)  # the last probe at the deadline
    assert probes >= 5
    message = str(info.value)
    assert "\n" not in message
    assert "http://x/v1 (model m)" in message and "HTTP 503" in message
    assert "Fix:" in message and "outage_allowance_s" in message and "resume" in message
    # every later caller gets it too, and it survives pickling (it crosses Ray)
    with pytest.raises(EndpointUnavailableError):
        core.permit()
    again = pickle.loads(pickle.dumps(info.value))
    assert str(again) == message and again.endpoint == core.endpoint


# -- over real sockets ---------------------------------------------------------------------------


def _config(base_url: str, **overrides) -> EndpointConfig:
    options = {
        "base_url": base_url,
        "model": MODEL,
        "api_key": SECRET_KEY,
        "backoff_base_s": 0.05,
        "backoff_cap_s": 0.2,
        "timeout_s": 2.0,
        "max_retries": 3,
        "outage_allowance_s": 30.0,
        "concurrency": 8,
    }
    options.update(overrides)
    return EndpointConfig(**options)


def test_an_outage_that_began_and_ended_while_a_call_waited_counts_as_seen(monkeypatch):
    """A worker whose calls failed before the outage was declared, and that asks only after
    it is over, still learns that it happened (a new epoch): those failures were the outage's,
    and its calls keep their retries (found with two workers, one of which never saw it)."""
    import izero.blackbox.health as health

    monkeypatch.setattr(health, "VERDICT_WAIT_S", 0.0)
    now = [0.0]
    core = HealthCore(endpoint="e", allowance_s=60.0, clock=lambda: now[0])
    client = HealthClient(LocalHealth(core))
    failed_at = time.monotonic()
    core.observe([("connection", False)] * 5)
    now[0] = 2.0
    assert core.view().outage  # declared (another worker's report or the progress display)
    core.observe([(ANSWERED, True)])  # its probe is answered: over
    assert not core.view().outage
    asyncio.run(client.verdict())
    assert not client.view.outage and client.outage_seen_since(failed_at)


def _server(sum_task, port: int | None = None) -> SimulatedServer:
    server = SimulatedServer(
        [sum_task],
        options=SimulatedOptions(model=MODEL, latency_s=0.02),
        port=quiet_port() if port is None else port,
    )
    server.start()
    return server


def test_calls_are_held_through_an_outage_and_none_fails(sum_task, tmp_path):
    server = _server(sum_task)
    port, base_url = server.port, server.base_url
    examples = sum_task.induce[:40]
    restarted: dict[str, SimulatedServer] = {}

    def outage() -> None:  # the server goes away mid-scoring and comes back 4 s later
        time.sleep(0.3)
        server.stop()
        time.sleep(4.0)
        restarted["server"] = _server(sum_task, port=port)

    async def go():
        scorer = EndpointScorer(
            _config(base_url, rpm=3000), cache_dir=tmp_path, scorer=exact_scorer, seed=0
        )
        views = []

        async def watch():
            while True:
                views.append(scorer.health.view)
                await asyncio.sleep(0.1)

        watcher = asyncio.create_task(watch())
        try:
            results = []
            for i in range(4):  # 160 calls at 50 per second span the outage
                results.append(
                    await scorer.score(GOOD, examples[i * 10 : i * 10 + 10], "exact_match")
                )
            return results, views, scorer.stats
        finally:
            watcher.cancel()
            await scorer.close()

    thread = threading.Thread(target=outage)
    thread.start()
    try:
        results, views, stats = asyncio.run(go())
    finally:
        thread.join()
        restarted.get("server", server).stop()
    assert all(r.n_failed == 0 and r.n_answered == 10 for r in results)
    assert any(v.outage for v in views), "the outage was never declared"
    assert "OUTAGE" in next(v for v in views if v.outage).line()
    assert not views[-1].outage
    # held calls did not keep knocking: a few attempts trip it, then one probe at a time
    failed = sum(n for k, n in stats.by_status.items() if k != "200")
    assert failed <= 8 + 4 * 8, stats.by_status
    assert restarted["server"].stats()["by_status"].get("200", 0) >= 1


def test_a_dead_endpoint_stops_after_the_allowance(sum_task):
    base_url = f"http://127.0.0.1:{quiet_port()}/v1"

    async def go():
        scorer = EndpointScorer(
            _config(base_url, outage_allowance_s=3.0, max_retries=50), scorer=exact_scorer
        )
        try:
            return await scorer.score(GOOD, sum_task.induce[:6], "exact_match")
        finally:
            await scorer.close()

    started = time.monotonic()
    with pytest.raises(EndpointUnavailableError) as info:
        asyncio.run(go())
    elapsed = time.monotonic() - started
    # trips after the 2 s window, then 3 s of probes (not 50 retries x 6 calls of backoff)
    assert 3.0 <= elapsed <= 15.0
    message = str(info.value)
    assert base_url in message and "connection errors" in message and "Fix:" in message
    assert SECRET_KEY not in message


def test_the_pool_holds_every_worker_and_reports_the_outage(ray_local, sum_task, tmp_path):
    server = _server(sum_task)
    port, base_url = server.port, server.base_url
    server.stop()  # down from the start; started again once the pool reports the outage
    restarted: list[SimulatedServer] = []
    pool = ScoringPool(
        _config(base_url, outage_allowance_s=120.0),
        num_workers=2,
        cache_dir=tmp_path,
        scorer=exact_scorer,
    )

    async def go():
        views = []

        async def watch():
            while True:
                view = await pool.health_view()
                views.append(view)
                if view is not None and view.outage and not restarted:
                    await asyncio.sleep(1.0)  # held for a while: no retries burned meanwhile
                    restarted.append(await asyncio.to_thread(_server, sum_task, port))
                await asyncio.sleep(0.2)

        watcher = asyncio.create_task(watch())
        try:
            instructions = ["Add the two numbers", "Sum them", "Say hi", "Add"]
            scored = await pool.score_many(instructions, sum_task.induce[:8], "exact_match")
        finally:
            watcher.cancel()
        return scored, views

    try:
        results, views = asyncio.run(go())
        workers = pool.worker_stats()
    finally:
        pool.close()
        for s in restarted:
            s.stop()
    assert restarted, "the outage was never reported"
    assert all(r.n_answered == 8 and r.n_failed == 0 for r in results)
    assert any(v is not None and v.outage and "OUTAGE" in v.line() for v in views)
    assert views[-1] is not None and not views[-1].outage
    assert all(w["failed"] == 0 for w in workers)
    # both worker processes were held: 32 calls, a few attempts each before the outage was
    # declared, then one probe at a time (not 4 retries each for every call)
    assert sum(w["attempts"] for w in workers) <= 32 * 4 + 10
