"""Revierlotse's fixes to Rasa keep Rasa's behaviour (event type lookup, root route, import order, threads)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys

import pytest
from rasa.shared.core import events
from rasa.shared.utils.common import all_subclasses

from revierlotse import rasa_patches
from revierlotse.settings import PROJECT_ROOT


def rasa_lookup(type_name):
    """Rasa's own rule: the first subclass in all_subclasses order with that name."""
    return next((c for c in all_subclasses(events.Event) if c.type_name == type_name), None)


@pytest.fixture(scope="module", autouse=True)
def patched():
    rasa_patches.apply()


def test_every_event_type_resolves_to_the_class_rasa_would_pick():
    names = {c.type_name for c in all_subclasses(events.Event)}
    assert {"user", "bot", "action", "slot", "session_started"} <= names
    for name in names:
        assert events.Event.resolve_by_type(name) is rasa_lookup(name)


def test_unknown_names_keep_rasas_behaviour():
    assert events.Event.resolve_by_type("topic") is None
    assert events.Event.resolve_by_type("no_such_event", default=events.UserUttered) is events.UserUttered
    with pytest.raises(ValueError, match="Unknown event name"):
        events.Event.resolve_by_type("no_such_event")


def test_events_still_round_trip_through_dicts():
    original = [events.UserUttered("Gehalt?", {"name": "ask_salary", "confidence": 0.9}),
                events.SlotSet("level", "entry"), events.ActionExecuted("action_answer_topic")]
    assert [events.Event.from_parameters(e.as_dict()) for e in original] == original


@pytest.mark.e2e
def test_root_route_does_not_disclose_the_rasa_version(bot):
    import urllib.request

    with urllib.request.urlopen(f"{bot.url}/", timeout=10) as resp:
        body = resp.read().decode()
    assert resp.status == 200 and body == "Revierlotse is running."
    assert "3.6" not in body and "Rasa" not in body


def test_start_up_imports_skops_before_tensorflow_and_no_jax():
    # A fresh interpreter: apply the patches (they import Rasa and TensorFlow), noting
    # whether skops was there when TensorFlow's import began, and whether JAX came in.
    code = (
        "import sys\n"
        "seen = []\n"
        "class Watch:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'tensorflow' and not seen:\n"
        "            seen.append('skops.io' in sys.modules)\n"
        "sys.meta_path.insert(0, Watch())\n"
        "from revierlotse import rasa_patches\n"
        "rasa_patches.apply()\n"
        "tflite_util = sys.modules['tensorflow.lite.python.util']\n"
        "print('skops first' if seen[0] else 'tensorflow first')\n"
        "print('jax imported' if 'jax' in sys.modules else 'no jax', tflite_util._xla_computation)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          cwd=PROJECT_ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-2:] == ["skops first", "no jax None"]


def test_launcher_runs_numpy_on_one_blas_thread_unless_the_operator_chose(monkeypatch):
    from revierlotse import launch

    monkeypatch.delenv("OPENBLAS_NUM_THREADS", raising=False)
    launch.one_blas_thread()
    assert os.environ["OPENBLAS_NUM_THREADS"] == "1"
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "4")
    launch.one_blas_thread()
    assert os.environ["OPENBLAS_NUM_THREADS"] == "4"


# --- keep_endpoint_connections_open: one session per endpoint, connections reused --------

async def _count_connections_server():
    from aiohttp import web

    peers = []

    async def webhook(request):
        peers.append(request.transport.get_extra_info("peername"))
        if (await request.json()).get("fail"):
            return web.json_response({"error": "nope"}, status=400)
        return web.json_response({"events": [], "responses": [{"text": "ok"}]})

    app = web.Application()
    app.router.add_post("/webhook", webhook)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    return runner, port, peers


def test_action_calls_reuse_one_connection_and_errors_stay_rasas():
    from rasa.utils.endpoints import ClientResponseError, EndpointConfig

    async def scenario():
        runner, port, peers = await _count_connections_server()
        endpoint = EndpointConfig(f"http://127.0.0.1:{port}/webhook")
        try:
            for _ in range(5):
                assert await endpoint.request(json={"next_action": "x"}, method="post") == {
                    "events": [], "responses": [{"text": "ok"}]}
            with pytest.raises(ClientResponseError):
                await endpoint.request(json={"fail": True}, method="post")
        finally:
            await runner.cleanup()
        return peers

    peers = asyncio.run(scenario())
    assert len(peers) == 6 and len(set(peers)) == 1  # six calls, one TCP connection


def test_a_restarted_or_idle_server_gets_a_fresh_connection(monkeypatch):
    from rasa.utils.endpoints import EndpointConfig

    async def scenario():
        runner, port, peers = await _count_connections_server()
        endpoint = EndpointConfig(f"http://127.0.0.1:{port}/webhook")
        await endpoint.request(json={}, method="post")
        await runner.cleanup()  # the action server goes away ...
        from aiohttp import web

        app = web.Application()

        async def webhook(request):
            return web.json_response({"events": [], "responses": []})

        app.router.add_post("/webhook", webhook)
        again = web.AppRunner(app)
        await again.setup()
        await web.TCPSite(again, "127.0.0.1", port).start()  # ... and comes back on its port
        try:
            assert await endpoint.request(json={}, method="post") == {"events": [], "responses": []}
            await asyncio.sleep(rasa_patches.ENDPOINT_KEEPALIVE_S + 0.5)  # idle: closed by us, not the server
            assert await endpoint.request(json={}, method="post") == {"events": [], "responses": []}
        finally:
            await again.cleanup()

    asyncio.run(scenario())


def test_sessions_are_closed_when_the_server_stops():
    import rasa.core.run
    from rasa.utils.endpoints import EndpointConfig

    async def scenario():
        runner, port, _ = await _count_connections_server()
        endpoint = EndpointConfig(f"http://127.0.0.1:{port}/webhook")
        await endpoint.request(json={}, method="post")
        async with endpoint.session() as session:
            pass
        assert not session.closed  # shared, outlives the block

        class App:
            class ctx:
                pass

        await rasa.core.run.close_resources(App(), asyncio.get_running_loop())
        await runner.cleanup()
        return session

    assert asyncio.run(scenario()).closed


def _copy_uses_outside_debug_calls(module) -> list:
    """`copy.` uses in `module`'s source that are not inside a `structlogger.debug(...)` call."""
    import ast
    import inspect

    tree = ast.parse(inspect.getsource(module))
    inside_debug = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and ast.unparse(node.func) == "structlogger.debug":
            inside_debug.update(id(child) for child in ast.walk(node))
    return [ast.unparse(node) for node in ast.walk(tree)
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "copy"
            and id(node) not in inside_debug]


@pytest.mark.parametrize("name", rasa_patches.DEBUG_LOG_COPY_MODULES)
def test_modules_given_the_copy_stand_in_copy_only_for_debug_logs(name):
    import importlib

    module = importlib.import_module(name)
    assert _copy_uses_outside_debug_calls(module) == []
    assert isinstance(module.copy, rasa_patches._CopyForDebugLogs)
    assert module.copy.copy is __import__("copy").copy  # everything else is the real module


def test_debug_log_arguments_are_copied_exactly_when_debug_is_logged():
    import logging

    from rasa.core import processor
    from rasa.utils.log_utils import configure_structlog

    events_list = [events.SlotSet("level", "senior"), {"nested": ["list"]}]
    try:
        configure_structlog(logging.INFO)
        assert not rasa_patches.debug_logged()
        assert processor.copy.deepcopy(events_list) is events_list  # nobody reads it
        configure_structlog(logging.DEBUG)
        assert rasa_patches.debug_logged()
        copied = processor.copy.deepcopy(events_list)
        assert copied == events_list and copied is not events_list and copied[1] is not events_list[1]
    finally:
        configure_structlog(logging.INFO)


def test_is_empty_answers_as_rasa_without_building_a_domain_per_call(monkeypatch):
    from rasa.shared.core.domain import Domain

    ours = Domain.load(str(PROJECT_ROOT / "domain.yml"))
    cases = [Domain.empty(), Domain.from_dict({}), ours, Domain.from_dict({"intents": ["greet"]})]
    expected = [d.as_dict() == Domain.from_dict({}).as_dict() for d in cases]  # Rasa's own rule
    assert expected == [True, True, False, False]
    built = []
    from_dict = Domain.from_dict.__func__
    monkeypatch.setattr(Domain, "from_dict", classmethod(lambda cls, data: built.append(data) or from_dict(cls, data)))
    assert [d.is_empty() for d in cases] == expected
    assert built == []
