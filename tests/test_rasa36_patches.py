"""Each speed-up gives Rasa's own results (event type lookup, endpoint sessions, debug-log copies,
`Domain.is_empty`, response validation), the root route hides the version, and start-up import order."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys

import pytest
from rasa.shared.core import events
from rasa.shared.utils.common import all_subclasses

from revierlotse import rasa36
from revierlotse.rasa36 import speedups
from revierlotse.settings import PROJECT_ROOT


def rasa_lookup(type_name):
    """Rasa's own rule: the first subclass in all_subclasses order with that name."""
    return next((c for c in all_subclasses(events.Event) if c.type_name == type_name), None)


@pytest.fixture(scope="module", autouse=True)
def patched():
    rasa36.apply()


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


@pytest.mark.e2e
def test_rasa_speedups_false_starts_rasa_with_the_behaviour_patches_only(bot, bot_without_speedups):
    import urllib.request

    from revierlotse import notices

    for running, state in ((bot, "on"), (bot_without_speedups, "off")):
        log = running.stack.service("rasa server").log_path.read_text(encoding="utf-8", errors="replace")
        assert f"patched by revierlotse.rasa36 (speed-ups {state})" in log
    with urllib.request.urlopen(f"{bot_without_speedups.url}/", timeout=10) as resp:
        assert resp.read().decode() == "Revierlotse is running."  # behaviour patches stay
    assert bot_without_speedups.ask_text("   ") == notices.EMPTY_MESSAGE


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
        "from revierlotse import rasa36\n"
        "rasa36.apply(speedups=True)\n"
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
            await asyncio.sleep(speedups.ENDPOINT_KEEPALIVE_S + 0.5)  # idle: closed by us, not the server
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


@pytest.mark.parametrize("name", speedups.DEBUG_LOG_COPY_MODULES)
def test_modules_given_the_copy_stand_in_copy_only_for_debug_logs(name):
    import importlib

    module = importlib.import_module(name)
    assert _copy_uses_outside_debug_calls(module) == []
    assert isinstance(module.copy, speedups.CopyForDebugLogs)
    assert module.copy.copy is __import__("copy").copy  # everything else is the real module


def test_debug_log_arguments_are_copied_exactly_when_debug_is_logged():
    import logging

    from rasa.core import processor
    from rasa.utils.log_utils import configure_structlog

    events_list = [events.SlotSet("level", "senior"), {"nested": ["list"]}]
    try:
        configure_structlog(logging.INFO)
        assert not speedups.debug_logged()
        assert processor.copy.deepcopy(events_list) is events_list  # nobody reads it
        configure_structlog(logging.DEBUG)
        assert speedups.debug_logged()
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


# --- validation of action server responses: prebuilt, and as strict as Rasa's ---------------------

@pytest.fixture(scope="module")
def remote_action():
    rasa36.apply()
    from rasa.core.actions.action import RemoteAction
    from rasa.utils.endpoints import EndpointConfig

    return RemoteAction("action_answer_topic", EndpointConfig("http://127.0.0.1:1/webhook"))


def test_valid_action_response_passes_the_prebuilt_validator(remote_action):
    response = {
        "events": [{"event": "slot", "name": "level", "value": "entry"}],
        "responses": [{"text": "Glück auf!", "buttons": []}],
    }
    assert remote_action._validate_action_result(response) is True


@pytest.mark.parametrize("response", [
    {"events": [{"event": "no_such_event"}], "responses": []},
    {"events": "not a list"},
    {"responses": ["not an object"]},
    {"events": [{"event": "slot"}]},  # slot event without a name
])
def test_malformed_action_response_is_still_rejected(remote_action, response):
    from jsonschema import ValidationError

    with pytest.raises(ValidationError, match="Failed to validate Action server response"):
        remote_action._validate_action_result(response)


def test_patched_validation_does_not_rebuild_the_validator_per_call(remote_action, monkeypatch):
    import jsonschema

    def rebuilding_validate(*_args, **_kwargs):
        raise AssertionError("jsonschema.validate rebuilds and re-checks the schema on every call")

    monkeypatch.setattr(jsonschema, "validate", rebuilding_validate)
    assert remote_action._validate_action_result({"events": [], "responses": []}) is True


def event_samples():
    """(event dict, expected by Rasa's schema) for every event type, valid and not."""
    from rasa.shared.utils.schemas.events import EVENT_SCHEMA

    names = [alt["properties"]["event"]["const"] for alt in EVENT_SCHEMA["oneOf"]]
    required = {"slot": {"name": "topic", "value": "salary"}, "entities": {"entities": []}}
    samples = []
    for name in names:
        base = {"event": name, **required.get(name, {})}
        samples += [base, {**base, "timestamp": 1.5, "metadata": {"a": 1}}, {**base, "timestamp": "yesterday"},
                    {**base, "metadata": []}]
    samples += [
        {"event": "slot", "name": "shown_entries", "value": ["a", "b"]},
        {"event": "slot", "name": 3, "value": 1},
        {"event": "slot", "value": 1},
        {"event": "entities", "entities": [{"entity": "place", "value": "duisburg"}]},
        {"event": "entities", "entities": [{"entity": "place"}]},
        {"event": "user", "text": "hallo", "parse_data": {"intent": {"name": "greet", "confidence": 0.9},
                                                          "entities": [], "intent_ranking": []}},
        {"event": "user", "text": 5},
        {"event": "user", "parse_data": {"response_selector": {"all_retrieval_intents": []}}},
        {"event": "user", "parse_data": {"response_selector": 3}},
        {"event": "action", "name": "action_answer_topic", "policy": None, "confidence": 1.0},
        {"event": "action", "confidence": "high"},
        {"event": "action", "hide_rule_turn": "yes"},
        {"event": "bot", "text": "Glück auf!", "data": {"buttons": [{"title": "x", "payload": "/ask_salary"}]}},
        {"event": "no_such_event"}, {"event": None}, {"event": ["slot"]}, {"name": "x"}, "slot", 7, None, [],
    ]
    return samples


def test_events_checked_by_name_accepts_only_what_the_full_schema_accepts():
    from jsonschema.validators import validator_for
    from rasa.core.actions.action import RemoteAction

    from revierlotse.rasa36.speedups import events_checked_by_name

    schema = RemoteAction.action_response_format_spec()
    full = validator_for(schema)(schema)
    surely_valid = events_checked_by_name(schema, validator_for(schema))
    assert surely_valid is not None
    responses = [{"events": [event], "responses": []} for event in event_samples()]
    responses += [
        {"events": [e for e in event_samples()[:8]], "responses": [{"text": "Hallo", "buttons": []}]},
        {"events": [], "responses": ["not an object"]}, {"events": "no list"}, {"events": None}, {},
        {"responses": [{"text": 5}]}, [], "text", None,
    ]
    accepted = 0
    for response in responses:
        if surely_valid(response):
            accepted += 1
            assert full.is_valid(response), response  # never more lenient than Rasa's schema
        elif full.is_valid(response):
            # only shapes it cannot decide may go to the full schema
            assert not isinstance(response, dict) or not isinstance(response.get("events"), list), response
    assert accepted >= 50  # valid responses take the quick path


@pytest.mark.parametrize("response", [
    {"events": [{"event": "slot", "name": "topic"}], "responses": []},
    {"events": [{"event": "user", "text": 5}], "responses": []},
    {"events": [{"event": "nope"}], "responses": []},
])
def test_rejected_responses_get_the_same_error_as_stock_rasa(remote_action, response):
    from jsonschema import ValidationError, validate
    from jsonschema.exceptions import best_match
    from jsonschema.validators import validator_for

    schema = remote_action.action_response_format_spec()
    stock = best_match(validator_for(schema)(schema).iter_errors(response))
    with pytest.raises(ValidationError) as raised:
        remote_action._validate_action_result(response)
    assert raised.value.message.startswith(stock.message + ". Failed to validate Action server response")
    assert list(raised.value.path) == list(stock.path)
    with pytest.raises(ValidationError):
        validate(response, schema)
