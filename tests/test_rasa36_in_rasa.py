"""Rasa itself calls every patched attribute: each test drives Rasa's public entry points
(the agent handling a message, the server's app factory and start-up) and observes that
the replacement ran.

The HTTP end-to-end tests cover the same patches through a running server: the turn
guard (tests/test_hostile_input.py), the apology (tests/test_outages.py), the tracker
store failing (tests/test_tracker_store_outage.py) and the root route
(tests/test_rasa36_patches.py).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Dict, List

import pytest
from aiohttp import web

from revierlotse import rasa36
from revierlotse.rasa36 import behaviour, speedups
from revierlotse.replies import apology_text
from revierlotse.settings import get_settings
from tests.conftest import free_port, new_sender

QUESTION = "Was verdient ein IT Manager in Duisburg?"


class FakeActionServer:
    """Answers Rasa's custom action calls; `mode` says how (ok / invalid / error)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.mode = "ok"
        self.calls: List[str] = []
        self.peers: List[tuple] = []

    async def webhook(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.calls.append(body["next_action"])
        self.peers.append(request.transport.get_extra_info("peername"))
        if self.mode == "error":
            return web.json_response({"error": "boom"}, status=500)
        if self.mode == "invalid":
            return web.json_response({"events": [{"event": "no_such_event"}], "responses": []})
        return web.json_response({"events": [{"event": "bot", "text": "ereignis"}],
                                  "responses": [{"text": f"answer of {body['next_action']}"}]})

    async def __aenter__(self) -> "FakeActionServer":
        app = web.Application()
        app.router.add_post("/webhook", self.webhook)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port, reuse_address=True).start()
        return self

    async def __aexit__(self, *exc) -> None:
        await self._runner.cleanup()


@pytest.fixture(scope="module")
def served(model, tmp_path_factory):
    """An agent as `rasa run` builds it: the trained model, our tracker store, an action endpoint."""
    rasa36.apply()
    if not rasa36.applied() or not rasa36._state["speedups"]:
        pytest.skip("this process runs with RASA_SPEEDUPS=false")
    from rasa.core.agent import Agent
    from rasa.utils.endpoints import EndpointConfig

    from revierlotse.stores.tracker_store import DatabaseTrackerStore

    port = free_port()
    url = f"sqlite:///{tmp_path_factory.mktemp('rasa36') / 'conversations.db'}"
    store = DatabaseTrackerStore(host=url)
    agent = Agent.load(str(model), tracker_store=store,
                       action_endpoint=EndpointConfig(f"http://127.0.0.1:{port}/webhook"))
    return agent, port, store


def talk(served, texts, mode: str = "ok", sender: str = "") -> tuple:
    """Send `texts` as one user through `Agent.handle_message`; (replies, action server)."""
    from rasa.core.channels.channel import CollectingOutputChannel, UserMessage

    agent, port, _ = served
    sender = sender or new_sender()
    replies: List[List[Dict]] = []

    async def scenario() -> FakeActionServer:
        async with FakeActionServer(port) as server:
            server.mode = mode
            for text in texts:
                out = CollectingOutputChannel()
                await agent.handle_message(UserMessage(text, out, sender))
                replies.append(out.messages)
        return server

    return replies, asyncio.run(scenario())


def replacement(target):
    value = rasa36.applied().replacements[target.key]
    return value.__func__ if isinstance(value, staticmethod) else value


def spy_on(monkeypatch, owner, name, calls: list):
    """Wrap what `owner.name` is now (our replacement) so that a call is recorded."""
    current = getattr(owner, name)

    def spy(*args, **kwargs):
        calls.append(name)
        return current(*args, **kwargs)

    monkeypatch.setattr(owner, name, spy)
    return current


# --- behaviour patches ----------------------------------------------------------------------

def test_the_agent_hands_every_message_to_the_turn_gate(served):
    from revierlotse import notices

    replies, server = talk(served, ["   ", QUESTION])
    assert [m["text"] for m in replies[0]] == [notices.EMPTY_MESSAGE]  # the gate answered, no turn
    assert replies[1] and server.calls  # a real turn after it


def test_the_processor_reports_intent_and_actions_to_the_turn_log(served, caplog):
    with caplog.at_level(logging.INFO, logger="revierlotse.turns"):
        talk(served, [QUESTION])
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("turn ")]
    assert len(lines) == 1 and "intent=-" not in lines[0] and "actions=-" not in lines[0]


def test_a_failing_action_server_gives_the_apology(served):
    replies, server = talk(served, [QUESTION], mode="error")
    assert server.calls and apology_text(get_settings().knowledge_dir) in [m["text"] for m in replies[0]]


def test_the_server_start_up_keeps_the_log_level_after_loading_the_model(model):
    import rasa.core.run
    from rasa.core.agent import load_agent  # noqa: F401 - what rasa.core.run calls via its module

    rasa36.apply()

    class App:
        class ctx:
            pass

    async def start() -> None:
        logging.getLogger().setLevel(logging.WARNING)  # what importing numpy.distutils does
        await rasa.core.run.load_agent_on_start(str(model), None, None, App(), asyncio.get_running_loop())

    level = logging.getLogger().level
    try:
        asyncio.run(start())
        assert logging.getLogger().level == logging.getLevelName(get_settings().log_level.upper())
    finally:
        logging.getLogger().setLevel(level)


def stored_user_texts(store, sender: str) -> List[str]:
    import json

    with store.engine.connect() as connection:
        rows = connection.execute(store._sql["all"], {"sender_id": sender}).scalars().all()
    return [json.loads(row)["text"] for row in rows if json.loads(row)["event"] == "user"]


def test_a_failing_tracker_store_gives_the_apology_and_stores_nothing_anywhere(served, monkeypatch, caplog):
    import sqlalchemy as sa
    from rasa.core.tracker_store import FailSafeTrackerStore

    agent, _, store = served
    assert type(agent.tracker_store) is FailSafeTrackerStore and agent.tracker_store._tracker_store is store
    calls: list = []
    for target in (behaviour.FAIL_SAFE_RETRIEVE, behaviour.FAIL_SAFE_SAVE):
        *_, name = target.path.split(".")
        assert spy_on(monkeypatch, FailSafeTrackerStore, name, calls) is replacement(target)
    apology = apology_text(get_settings().knowledge_dir)
    sender = new_sender()
    talk(served, [QUESTION], sender=sender)
    assert stored_user_texts(store, sender) == [QUESTION]

    # Loading fails (the database is unreachable): the apology, nothing else, one line.
    working = store.engine
    unreachable = sa.create_engine(f"postgresql://nobody@127.0.0.1:{free_port()}/gone", future=True)
    monkeypatch.setattr(store, "engine", unreachable)
    calls.clear()
    with caplog.at_level(logging.INFO, logger="revierlotse.turns"):
        replies, _ = talk(served, ["und mit mehr Erfahrung?"], sender=sender)
    assert [m["text"] for m in replies[0]] == [apology] and calls == ["retrieve"]
    lines = [r.getMessage() for r in caplog.records if r.name == "revierlotse.turns" and r.levelno >= logging.ERROR]
    assert len(lines) == 1 and "could not load the conversation (OperationalError)" in lines[0]
    assert "outcome=not_stored" in caplog.records[-1].getMessage()

    # Saving fails after the answer was computed: the answer is withheld, the apology said.
    monkeypatch.setattr(store, "engine", working)
    store._kept.clear()

    async def failing_save(tracker) -> None:
        raise sa.exc.OperationalError("INSERT", {}, Exception("server closed the connection"))

    monkeypatch.setattr(store, "save", failing_save)
    calls.clear()
    replies, server = talk(served, ["und mit mehr Erfahrung?"], sender=sender)
    assert server.calls and [m["text"] for m in replies[0]] == [apology] and calls == ["retrieve", "save"]
    monkeypatch.undo()  # the store works again; Rasa's fallback kept nothing meanwhile
    assert agent.tracker_store._fallback_tracker_store is None
    assert stored_user_texts(store, sender) == [QUESTION]


@pytest.fixture
def sanic_apps(monkeypatch):
    """Sanic apps built here leave Sanic's registry of app names as it was."""
    from sanic import Sanic

    monkeypatch.setattr(Sanic, "_app_registry", dict(Sanic._app_registry))
    monkeypatch.setattr(Sanic, "test_mode", True)


def test_both_app_factories_serve_our_root_route(sanic_apps):
    import rasa.core.run
    import rasa.server
    from rasa.core.channels.rest import RestInput

    rasa36.apply()
    ours = replacement(behaviour.ROOT_ROUTE)
    apps = (rasa.core.run.configure_app([RestInput()], enable_api=False, port=free_port()),
            rasa.server.create_app())
    for app in apps:
        root = [route for route in app.router.routes if route.path in {"", "/"}]
        assert len(root) == 1 and root[0].handler.__qualname__.startswith(ours.__qualname__), app.name


# --- speed-ups ----------------------------------------------------------------------------------

def test_action_responses_are_validated_by_the_prebuilt_validator(served, monkeypatch):
    import jsonschema
    from rasa.core.actions.action import RemoteAction

    def rebuilding_validate(*_args, **_kwargs):
        raise AssertionError("Rasa's own validation ran (jsonschema.validate)")

    monkeypatch.setattr(jsonschema, "validate", rebuilding_validate)
    calls: list = []
    assert spy_on(monkeypatch, RemoteAction, "_validate_action_result", calls) is replacement(speedups.VALIDATE_RESULT)
    replies, server = talk(served, [QUESTION])
    assert calls and server.calls and any(m["text"].startswith("answer of ") for m in replies[0])
    calls.clear()
    replies, server = talk(served, [QUESTION], mode="invalid")  # rejected as Rasa would: the apology
    assert calls and apology_text(get_settings().knowledge_dir) in [m["text"] for m in replies[0]]


def test_loading_a_conversation_resolves_its_events_from_the_cache(served):
    _, _, store = served
    sender = new_sender()
    talk(served, [QUESTION], sender=sender)
    store._kept.clear()  # the next message loads the conversation from its rows
    speedups.EVENT_TYPES.clear()
    talk(served, ["und mit mehr Erfahrung?"], sender=sender)
    assert {"user", "action", "bot", "session_started"} <= set(speedups.EVENT_TYPES)


def test_the_processor_runs_its_graphs_with_the_sequential_runner(served, monkeypatch):
    from revierlotse.rasa36.graph_runner import SequentialGraphRunner

    agent = served[0]
    assert type(agent.processor.graph_runner) is SequentialGraphRunner  # what Rasa built from the model
    calls: list = []
    spy_on(monkeypatch, SequentialGraphRunner, "run", calls)
    talk(served, [QUESTION])
    assert len(calls) >= 3  # NLU once, the policies once per predicted action


def test_the_policies_get_their_dialogue_states_incrementally(served):
    walks = speedups.INCREMENTAL_STATES["served"]._walks
    sender = new_sender()
    talk(served, [QUESTION, "und mit mehr Erfahrung?"], sender=sender)
    assert any(key[0] == sender for key in walks)


def test_custom_action_calls_share_one_connection(served):
    _, server = talk(served, [QUESTION, "und mit mehr Erfahrung?", "Welche Zertifikate zählen?"])
    assert len(server.peers) >= 3 and len(set(server.peers)) == 1


def test_the_server_closes_the_shared_sessions_when_it_stops(monkeypatch, sanic_apps):
    import rasa.core.run
    from sanic import Sanic

    rasa36.apply()
    listeners = []
    register_listener = Sanic.register_listener
    monkeypatch.setattr(Sanic, "register_listener",
                        lambda self, listener, event: listeners.append((event, listener))
                        or register_listener(self, listener, event))
    monkeypatch.setattr(Sanic, "run", lambda self, *a, **k: None)  # built, not started
    rasa.core.run.serve_application(channel="rest", port=free_port(), enable_api=False)
    assert ("after_server_stop", replacement(speedups.CLOSE_RESOURCES)) in listeners


def test_debug_log_arguments_go_through_the_copy_stand_in(served, monkeypatch):
    calls: list = []
    spy_on(monkeypatch, speedups.CopyForDebugLogs, "deepcopy", calls)
    talk(served, [QUESTION])
    assert calls


def test_the_processor_asks_our_is_empty(served, monkeypatch):
    from rasa.shared.core.domain import Domain

    calls: list = []
    assert spy_on(monkeypatch, Domain, "is_empty", calls) is replacement(speedups.IS_EMPTY)
    built: list = []
    from_dict = Domain.from_dict.__func__
    monkeypatch.setattr(Domain, "from_dict", classmethod(lambda cls, data: built.append(1) or from_dict(cls, data)))
    talk(served, [QUESTION])
    assert calls and not built
