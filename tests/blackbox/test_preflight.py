"""The endpoint check a sweep makes before it writes anything, over real sockets."""

from __future__ import annotations

import asyncio
import socket

import pytest

from izero.blackbox.config import EndpointConfig
from izero.blackbox.errors import AuthenticationError, NotFoundError
from izero.blackbox.health import EndpointUnavailableError
from izero.blackbox.pool import EndpointScorer
from izero.blackbox.preflight import check_endpoint
from izero.blackbox.simulated import SimulatedOptions, SimulatedServer, _App

from .conftest import MODEL, SECRET_KEY, exact_scorer

VAR = "IZERO_PREFLIGHT_TEST_KEY"


def _config(base_url: str, **overrides) -> EndpointConfig:
    return EndpointConfig(**{"base_url": base_url, "model": MODEL, "api_key_env": VAR, **overrides})


def _check(config: EndpointConfig):
    return asyncio.run(check_endpoint(config))


def test_a_good_endpoint_passes_with_one_cheap_request(make_server, monkeypatch):
    server = make_server(api_key=SECRET_KEY)
    monkeypatch.setenv(VAR, SECRET_KEY)
    result = _check(_config(server.base_url))
    assert (result.request, result.status, result.listed) == ("GET /models", 200, True)
    assert server.stats()["n_requests"] == 0  # nothing paid: /models is not a completion


def test_an_absent_key_is_named_as_absent(make_server, monkeypatch):
    server = make_server(api_key=SECRET_KEY)
    monkeypatch.delenv(VAR, raising=False)
    with pytest.raises(AuthenticationError) as info:
        _check(_config(server.base_url))
    message = str(info.value)
    assert "no API key" in message and f"{VAR} is not set" in message
    assert f"export {VAR}=" in message and "api_key in the config" not in message
    # the client says the same when a sweep runs without preflight
    scorer_error = _score_error(_config(server.base_url, max_retries=0))
    assert "no API key" in scorer_error and VAR in scorer_error


def test_a_wrong_key_is_named_as_rejected(make_server, monkeypatch):
    server = make_server(api_key=SECRET_KEY)
    monkeypatch.setenv(VAR, "sk-wrong-key-0000")
    with pytest.raises(AuthenticationError) as info:
        _check(_config(server.base_url))
    message = str(info.value)
    assert f"the API key in {VAR} was rejected" in message
    assert "sk-wrong-key-0000" not in message and "api_key in the config" not in message


def test_a_model_the_endpoint_does_not_list_is_refused(make_server):
    server = make_server()
    with pytest.raises(NotFoundError, match=r"model 'gpt-nope' is not among the 1 models"):
        _check(_config(server.base_url, model="gpt-nope"))


def test_a_wrong_url_is_refused(make_server):
    server = make_server()
    with pytest.raises(NotFoundError) as info:
        _check(_config(server.base_url[: -len("/v1")] + "/v2"))
    assert "POST /chat/completions was not found" in str(info.value)
    assert "base_url" in str(info.value)


def test_a_closed_port_is_unreachable(monkeypatch):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setattr("izero.blackbox.preflight.PREFLIGHT_WAIT_S", 0.05)
    with pytest.raises(EndpointUnavailableError) as info:
        _check(_config(f"http://127.0.0.1:{port}/v1"))
    message = str(info.value)
    assert f"127.0.0.1:{port}" in message and "3 tries" in message
    assert "preflight: false" in message and "\n" not in message


class _NoModelsApp(_App):
    """A server without ``GET /models`` (some proxies): the check falls back to a completion."""

    def build(self):
        from aiohttp import web

        app = web.Application()
        app.router.add_post("/v1/chat/completions", self.chat)
        return app


class _NoModelsServer(SimulatedServer):
    def _make_app(self):
        app = super()._make_app()
        return _NoModelsApp(app.model, app.options)


def test_an_endpoint_without_models_gets_a_one_token_completion(sum_task):
    server = _NoModelsServer([sum_task], options=SimulatedOptions(model=MODEL))
    server.start()
    try:
        result = _check(_config(server.base_url))
        with pytest.raises(NotFoundError, match="does not exist"):
            _check(_config(server.base_url, model="other"))
        stats = server.stats()
    finally:
        server.stop()
    assert (result.request, result.status) == ("POST /chat/completions", 200)
    assert stats["by_status"] == {"200": 1, "404": 1}


def _score_error(config: EndpointConfig) -> str:
    async def go():
        scorer = EndpointScorer(config, scorer=exact_scorer)
        try:
            from izero.tasks.types import Example

            await scorer.score("Add", [Example("1 2", ("3",))], "exact_match")
        finally:
            await scorer.close()

    with pytest.raises(AuthenticationError) as info:
        asyncio.run(go())
    return str(info.value)
