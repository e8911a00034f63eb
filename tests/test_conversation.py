"""Conversations over several turns, end to end over REST: context, follow-ups, fallbacks."""

from __future__ import annotations

import pytest

from tests.conftest import new_sender
from tests.speedups import bot  # noqa: F401 - every test here runs with and without the speed-ups

pytestmark = pytest.mark.e2e

ENTRY = "4.200 bis 5.200 €"
SENIOR = "5.800 bis 7.200 €"


class Dialog:
    """One user talking to the bot; `say` returns the joined reply text."""

    def __init__(self, bot) -> None:
        self.bot, self.sender, self.last = bot, new_sender(), []

    def say(self, text: str) -> str:
        self.last = self.bot.ask(text, self.sender)
        return "\n".join(m.get("text", "") for m in self.last)

    def buttons(self):
        return [(b["title"], b["payload"]) for m in self.last for b in m.get("buttons", [])]


def test_follow_up_with_more_experience_gives_the_senior_band(bot):
    d = Dialog(bot)
    assert ENTRY in d.say("was verdient man als einsteiger?")
    reply = d.say("und mit mehr Erfahrung?")
    assert SENIOR in reply and "Quelle:" in reply


def test_follow_up_as_career_changer_mentions_starting_below_the_entry_band(bot):
    d = Dialog(bot)
    d.say("wie hoch ist das gehalt?")
    assert "unter der Einstiegsspanne" in d.say("und als Quereinsteiger?")


def test_follow_up_in_industry_adds_the_industry_note(bot):
    d = Dialog(bot)
    d.say("Was verdient man mit Erfahrung?")
    reply = d.say("und in der Industrie?")
    assert SENIOR in reply and "Industriebetrieb" in reply


def test_after_training_which_certificates_exactly(bot):
    d = Dialog(bot)
    assert "Abschnitt 5" in d.say("Wie kann ich mich weiterbilden?")
    reply = d.say("welche Zertifikate genau?")
    assert all(area in reply for area in ("Cloud", "Datenschutz", "DevOps"))


def test_more_gives_new_details_then_says_when_there_is_nothing_left(bot):
    d = Dialog(bot)
    first = d.say("welche Fähigkeiten brauche ich?")
    seen = {first}
    for _ in range(5):
        reply = d.say("erzähl mehr")
        if "Mehr habe ich zu diesem Thema nicht" in reply:
            break
        assert reply not in seen
        seen.add(reply)
    else:
        pytest.fail("'erzähl mehr' never ran out of details")
    assert len(seen) >= 2
    assert d.buttons(), "the end of a topic offers the menu"


def test_what_the_user_said_about_themselves_shapes_later_answers(bot):
    d = Dialog(bot)
    ack = d.say("ich bin Techniker und will aufsteigen")
    assert "Technikerrolle" in ack
    skills = d.say("welche Fähigkeiten brauche ich?")
    assert "technischem Know-how" in skills.split("\n")[0]  # what a technician moving up needs to hear leads
    assert "unter der Einstiegsspanne" in d.say("was verdient man?")


def test_forget_clears_what_the_user_said(bot):
    d = Dialog(bot)
    d.say("ich bin Einsteiger")
    shaped = d.say("was verdient man?")
    assert shaped.index(ENTRY) < shaped.index(SENIOR) if SENIOR in shaped else ENTRY in shaped
    assert "vergessen" in d.say("vergiss das")
    reply = d.say("was verdient man?")
    assert ENTRY in reply and SENIOR in reply, "without a level both bands are given"


def test_question_naming_two_topics_gets_both_answers(bot):
    reply = Dialog(bot).say("Was verdient man und welche Weiterbildung lohnt sich?")
    assert ENTRY in reply and "Abschnitt 4" in reply
    assert "Abschnitt 5" in reply


def test_qualifier_without_specific_knowledge_is_said_honestly(bot):
    d = Dialog(bot)
    d.say("welche Technik-Trends kommen auf mich zu?")
    reply = d.say("und im Mittelstand?")
    assert "keine eigenen Informationen" in reply and "Mittelstand" in reply


def test_another_city_then_duisburg_again(bot):
    d = Dialog(bot)
    assert "keine Angaben" in d.say("Was verdient ein IT Manager in Hamburg?")
    assert ENTRY in d.say("und in Duisburg?")


def test_greeting_menu_buttons_work_as_payloads(bot):
    d = Dialog(bot)
    d.say("Hallo")
    buttons = dict(d.buttons())
    assert set(buttons) >= {"Gehalt", "Fähigkeiten", "Alltag", "Kultur", "Weiterbildung", "Perspektiven"}
    assert "Abschnitt 6" in d.say(buttons["Perspektiven"])
    assert "Abschnitt 3" in d.say(buttons["Kultur"])


# Gibberish that the model cannot place: NLU confidence stays below the fallback threshold.
GIBBERISH = ("xkcd qwz", "okay?")


def test_two_misses_in_a_row_first_clarify_then_honest_fallback_with_menu(bot):
    d = Dialog(bot)
    first = d.say(GIBBERISH[0])
    assert "Meintest du" in first
    payloads = [p for _, p in d.buttons()]
    assert payloads and payloads[-1] == "/ask_capabilities", "clarifying buttons end with 'Etwas anderes'"
    second = d.say(GIBBERISH[1])
    assert "keine Angaben" in second and "Meintest du" not in second
    assert {"Gehalt", "Perspektiven"} <= {t for t, _ in d.buttons()}


def test_after_a_miss_a_suggested_topic_button_answers_that_topic(bot):
    d = Dialog(bot)
    d.say(GIBBERISH[0])
    title, payload = d.buttons()[0]
    assert payload.startswith("/ask_")
    assert "Quelle:" in d.say(payload)
