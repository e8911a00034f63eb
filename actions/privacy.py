"""Privacy actions: erase the conversation on request, and say what is stored.

Erasure itself happens in the tracker store (see revierlotse/erasure.py): this action
says what is about to happen and returns the marker event; the save after the turn then
deletes every stored event of the conversation instead of writing the turn.
"""

from __future__ import annotations

from typing import Text

from rasa_sdk.events import SlotSet

from actions.actions import KnowledgeAction
from revierlotse.erasure import ERASE_SLOT
from revierlotse.settings import get_settings


class ActionDeleteData(KnowledgeAction):
    """ "Lösch meine Daten", `/loeschen`, the widget's control: erase the whole conversation."""

    def name(self) -> Text:
        return "action_delete_data"

    def respond(self, dispatcher, tracker, kb):
        self.say_with_menu(dispatcher, kb, "data_deleted")
        return [SlotSet(ERASE_SLOT, True)]


class ActionPrivacyNotice(KnowledgeAction):
    """ "Was speicherst du?", `/datenschutz`: what is stored, for how long, how to delete it."""

    def name(self) -> Text:
        return "action_privacy_notice"

    def respond(self, dispatcher, tracker, kb):
        dispatcher.utter_message(text=kb.reply("privacy_notice", days=str(get_settings().retention_days)))
        return []
