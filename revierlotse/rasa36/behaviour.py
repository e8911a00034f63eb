"""Patches that change what Rasa 3.6.21 does: always on.

- guard_every_turn: rate limit, empty/over-long text, the apology on any failure and
  the INFO turn log, for every channel (`revierlotse.turns.TurnGate`).
- apologise_when_actions_fail: an action server that is down, failing or too slow
  yields the apology instead of silence (`revierlotse.turns.run_remote_action`).
- keep_log_level_after_model_load: INFO lines survive loading the model.
- hide_version_on_root_route: `GET /` does not tell which Rasa version runs.
- refuse_turns_the_tracker_store_cannot_keep: when the tracker store cannot load or save
  a conversation, the turn ends with the apology instead of Rasa's silent in-memory
  fallback (`revierlotse.turns.TrackerStoreUnavailable`).
"""

from __future__ import annotations

from typing import Any, Dict

from revierlotse.rasa36.core import Patch, Target

HANDLE_MESSAGE = Target("rasa.core.agent", "Agent.handle_message",
                        "Agent.handle_message sha256:ba53507e4d5532a3")
PREDICTION_LOOP = Target("rasa.core.processor", "MessageProcessor._run_prediction_loop",
                         "MessageProcessor._run_prediction_loop sha256:cb30a0cbb690c571")
REMOTE_RUN = Target("rasa.core.actions.action", "RemoteAction.run",
                    "RemoteAction.run sha256:ccabf6f1160d527a")
LOAD_AGENT = Target("rasa.core.agent", "load_agent", "load_agent sha256:abc2a4cb13cbbd2b")
ROOT_ROUTE = Target("rasa.server", "add_root_route", "add_root_route sha256:acc5f7c278af32f8")
_TRACKER_STORE = "rasa.core.tracker_store"
FAIL_SAFE_RETRIEVE = Target(_TRACKER_STORE, "FailSafeTrackerStore.retrieve",
                            "FailSafeTrackerStore.retrieve sha256:35d77318b0cc7977")
FAIL_SAFE_RETRIEVE_FULL = Target(_TRACKER_STORE, "FailSafeTrackerStore.retrieve_full_tracker",
                                 "FailSafeTrackerStore.retrieve_full_tracker sha256:5272a6be0919b511")
FAIL_SAFE_SAVE = Target(_TRACKER_STORE, "FailSafeTrackerStore.save", "FailSafeTrackerStore.save sha256:8426dc08f58d7110")
FAIL_SAFE_KEYS = Target(_TRACKER_STORE, "FailSafeTrackerStore.keys", "FailSafeTrackerStore.keys sha256:2383a042130a7ce5")
# Relied upon: every agent wraps its store in FailSafeTrackerStore, which keeps it as `_tracker_store`.
CREATE_TRACKER_STORE = Target("rasa.core.agent", "Agent._create_tracker_store",
                              "Agent._create_tracker_store sha256:97499b594b45581b")
FAIL_SAFE_INIT = Target(_TRACKER_STORE, "FailSafeTrackerStore.__init__",
                        "FailSafeTrackerStore.__init__ sha256:a1d5d95d2f96830b")


def _guard_every_turn(originals: Dict[str, Any]) -> Dict[str, Any]:
    """Wrap `Agent.handle_message` (every channel hands its messages to it) with
    `TurnGate`, and `MessageProcessor._run_prediction_loop` so the turn log learns
    intent, confidence and actions from the tracker."""
    from revierlotse.settings import get_settings
    from revierlotse.turns import TurnGate, record_tracker

    gate = TurnGate(get_settings())
    handle_message = originals[HANDLE_MESSAGE.key]
    run_prediction_loop = originals[PREDICTION_LOOP.key]

    async def guarded_handle_message(self, message):
        return await gate.handle(handle_message, self, message)

    async def recorded_prediction_loop(self, output_channel, tracker) -> None:
        try:
            await run_prediction_loop(self, output_channel, tracker)
        finally:
            record_tracker(tracker)

    return {HANDLE_MESSAGE.key: guarded_handle_message, PREDICTION_LOOP.key: recorded_prediction_loop}


def _apologise_when_actions_fail(originals: Dict[str, Any]) -> Dict[str, Any]:
    """Stock Rasa logs a failed custom action and the user gets no reply at all (and
    waits up to five minutes for a hung action server)."""
    from revierlotse.settings import get_settings
    from revierlotse.turns import run_remote_action

    settings = get_settings()
    run = originals[REMOTE_RUN.key]

    async def run_with_apology(self, output_channel, nlg, tracker, domain):
        return await run_remote_action(run, self, output_channel, nlg, tracker, domain,
                                       settings.action_timeout_seconds, settings.knowledge_dir)

    return {REMOTE_RUN.key: run_with_apology}


def _keep_log_level_after_model_load(originals: Dict[str, Any]) -> Dict[str, Any]:
    """Loading the model imports skops -> sklearn.utils.all_estimators -> numpy.distutils,
    whose import sets the root logger to WARNING: from then on the server dropped every
    INFO line (Rasa's "server is up" and the turn log included). The level is restored
    after `load_agent`, which the server calls to load the model."""
    import logging

    from revierlotse.settings import get_settings

    load_agent = originals[LOAD_AGENT.key]

    async def load_agent_keeping_log_level(*args, **kwargs):
        try:
            return await load_agent(*args, **kwargs)
        finally:
            logging.getLogger().setLevel(get_settings().log_level.upper())

    return {LOAD_AGENT.key: load_agent_keeping_log_level}


ROOT_ROUTE_TEXT = "Revierlotse is running."


def _hide_version_on_root_route(_originals: Dict[str, Any]) -> Dict[str, Any]:
    """Stock Rasa answers `GET /` with "Hello from Rasa: 3.6.21". Both app factories
    (with and without the HTTP API) look `rasa.server.add_root_route` up when called."""
    from sanic import response

    def add_root_route(app) -> None:
        @app.get("/")
        async def hello(request):
            return response.text(ROOT_ROUTE_TEXT)

    return {ROOT_ROUTE.key: add_root_route}


def _refuse_turns_the_tracker_store_cannot_keep(_originals: Dict[str, Any]) -> Dict[str, Any]:
    """Rasa wraps every agent's tracker store in `FailSafeTrackerStore`: when the store
    fails, a load returns None (the conversation silently starts from scratch) and a save
    goes into an in-memory store nobody reads, and the user is answered as if all was
    well. Now a failing load or save raises `TrackerStoreUnavailable`, which the turn
    gate answers with the apology; nothing of the turn is stored anywhere, and the next
    turn after the database is back loads what was stored before. The replacements call
    the wrapped store (`self._tracker_store`) exactly as Rasa's methods do."""
    from revierlotse.turns import TrackerStoreUnavailable

    async def retrieve(self, sender_id):
        try:
            return await self._tracker_store.retrieve(sender_id)
        except Exception as error:  # noqa: BLE001 - any store failure: no turn on a guessed state
            raise TrackerStoreUnavailable("load", error) from error

    async def retrieve_full_tracker(self, sender_id):
        try:
            return await self._tracker_store.retrieve_full_tracker(sender_id)
        except Exception as error:  # noqa: BLE001
            raise TrackerStoreUnavailable("load", error) from error

    async def save(self, tracker) -> None:
        try:
            await self._tracker_store.save(tracker)
        except Exception as error:  # noqa: BLE001
            raise TrackerStoreUnavailable("save", error) from error

    async def keys(self):
        try:
            return await self._tracker_store.keys()
        except Exception as error:  # noqa: BLE001
            raise TrackerStoreUnavailable("list", error) from error

    return {FAIL_SAFE_RETRIEVE.key: retrieve, FAIL_SAFE_RETRIEVE_FULL.key: retrieve_full_tracker,
            FAIL_SAFE_SAVE.key: save, FAIL_SAFE_KEYS.key: keys}


PATCHES = (
    Patch("guard_every_turn", False, (HANDLE_MESSAGE, PREDICTION_LOOP), _guard_every_turn,
          doc=_guard_every_turn.__doc__),
    Patch("apologise_when_actions_fail", False, (REMOTE_RUN,), _apologise_when_actions_fail,
          doc=_apologise_when_actions_fail.__doc__),
    Patch("keep_log_level_after_model_load", False, (LOAD_AGENT,), _keep_log_level_after_model_load,
          doc=_keep_log_level_after_model_load.__doc__),
    Patch("hide_version_on_root_route", False, (ROOT_ROUTE,), _hide_version_on_root_route,
          doc=_hide_version_on_root_route.__doc__),
    Patch("refuse_turns_the_tracker_store_cannot_keep", False,
          (FAIL_SAFE_RETRIEVE, FAIL_SAFE_RETRIEVE_FULL, FAIL_SAFE_SAVE, FAIL_SAFE_KEYS),
          _refuse_turns_the_tracker_store_cannot_keep, relies_on=(CREATE_TRACKER_STORE, FAIL_SAFE_INIT),
          doc=_refuse_turns_the_tracker_store_cannot_keep.__doc__),
)
