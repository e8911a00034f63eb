"""`make shell` end to end: a scripted German dialog in `rasa shell`.

`rasa shell` reads input through prompt_toolkit/questionary and shows buttons as an
arrow-key menu, which needs a terminal; piped stdin does not work for that. So the test
runs the same command as `make shell` (`python -m revierlotse.serve --shell`: action
server + `rasa shell` through revierlotse.launch) in a pseudo-terminal with pexpect,
types like a person (Enter picks the highlighted menu entry) and reads the screen with
colour codes removed.
"""

from __future__ import annotations

import os
import re
import signal
import sys

import pexpect
import pytest

from revierlotse.settings import PROJECT_ROOT
from tests.conftest import free_port

pytestmark = pytest.mark.e2e

PROMPT = "Your input ->"
MENU_END = "Type out your own message..."
ANSWER_END = "Quelle:.*?„Gehalt und Perspektiven“"
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def screen_text(raw: str) -> str:
    """Terminal output as a person reads it: no colour/cursor codes, single spaces."""
    return re.sub(r"\s+", " ", _ANSI.sub("", raw))


@pytest.fixture
def shell(model, kb_url, tmp_path):
    env = {
        **os.environ,
        "DATABASE_URL": kb_url,
        "RASA_PORT": str(free_port()),
        "ACTION_SERVER_PORT": str(free_port()),
        "RASA_TELEMETRY_ENABLED": "false",
        "TERM": "xterm",
        "PROMPT_TOOLKIT_NO_CPR": "1",  # nobody answers cursor-position requests here
    }
    child = pexpect.spawn(sys.executable, ["-m", "revierlotse.serve", "--shell"], cwd=str(PROJECT_ROOT), env=env,
                          encoding="utf-8", dimensions=(50, 400), timeout=240)  # wide: no wrapped lines
    child.logfile_read = open(tmp_path / "shell.log", "w", encoding="utf-8")  # noqa: SIM115 - closed below
    try:
        yield child
    finally:
        if child.isalive():  # Ctrl-C, as a person would: serve.py then stops its action server
            child.kill(signal.SIGINT)
            child.expect([pexpect.EOF, pexpect.TIMEOUT], timeout=30)
        child.close(force=True)
        child.logfile_read.close()


def until(child: pexpect.spawn, pattern: str) -> str:
    """Wait for `pattern`; the screen text up to and including it."""
    child.expect(pattern)
    return screen_text(child.before + child.after)


def test_scripted_german_dialog_in_rasa_shell(shell):
    until(shell, "Bot loaded")
    until(shell, PROMPT)

    shell.sendline("Hallo!")
    greeting = until(shell, re.escape(MENU_END))
    assert "Glück auf" in greeting
    assert "1: Gehalt (/ask_salary)" in greeting

    shell.send("\r")  # Enter: the highlighted first entry, "Gehalt"
    salary = until(shell, ANSWER_END)
    assert "4.200 bis 5.200 €" in salary and "5.800 bis 7.200 €" in salary

    until(shell, PROMPT)
    shell.sendline("Was verdient man mit Teamleitung in einem alten Industriebetrieb?")
    senior = until(shell, ANSWER_END)
    assert "5.800 bis 7.200 €" in senior and "Industriebetrieb" in senior
    assert "4.200 bis 5.200 €" not in senior

    until(shell, PROMPT)
    shell.sendline("/stop")
    shell.expect(pexpect.EOF)
    shell.close()
    assert shell.exitstatus == 0
