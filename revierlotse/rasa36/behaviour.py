"""Patches that change what Rasa 3.6.21 does: always on.

- guard_every_turn: rate limit, empty/over-long text, the apology on any failure and
  the INFO turn log, for every channel (`revierlotse.turns.TurnGate`).
- apologise_when_actions_fail: an action server that is down, failing or too slow
  yields the apology instead of silence (`revierlotse.turns.run_remote_action`).
- keep_log_level_after_model_load: INFO lines survive loading the model.
- hide_version_on_root_route: `GET /` does not tell which Rasa version runs.
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


PATCHES = (
    Patch("guard_every_turn", False, (HANDLE_MESSAGE, PREDICTION_LOOP), _guard_every_turn,
          doc=_guard_every_turn.__doc__),
    Patch("apologise_when_actions_fail", False, (REMOTE_RUN,), _apologise_when_actions_fail,
          doc=_apologise_when_actions_fail.__doc__),
    Patch("keep_log_level_after_model_load", False, (LOAD_AGENT,), _keep_log_level_after_model_load,
          doc=_keep_log_level_after_model_load.__doc__),
    Patch("hide_version_on_root_route", False, (ROOT_ROUTE,), _hide_version_on_root_route,
          doc=_hide_version_on_root_route.__doc__),
)
