"""The website widget in a real browser: web page + socket.io channel + Rasa + actions.

Headless Debian Chromium driven by Playwright (`make install` installs both). One
stack (action server, Rasa server, web server) for the whole module, on free ports,
with CORS_ORIGINS set to the page's origin only.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml

from revierlotse.channels.socketio import _origins, defuse_links
from revierlotse.kb.loader import load_knowledge
from revierlotse.kb.models import make_engine
from revierlotse.settings import PROJECT_ROOT
from revierlotse.stack import Stack
from revierlotse.web import WEB_DIR, WEBCHAT_BUNDLE, resolve
from tests.conftest import ARTIFACTS, free_port, stack_overrides

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]
SCREENSHOTS = ARTIFACTS / "screenshots"
TIMEOUT_MS = 60_000

# Bot bubbles, not the "typing" indicator (which is a .rw-response too).
BOT = ".rw-response:not(.rw-typing-indication .rw-response)"
TYPING = ".rw-typing-indication"
USER = ".rw-client"
INPUT = "textarea.rw-new-message"
SEND = "button.rw-send"
BUTTON = ".rw-reply"


# --- unit: the channel's own rules (no servers) -------------------------------------

@pytest.mark.parametrize("text, expected", [
    ("[klick](javascript:alert(1))", "klick"),
    ("[klick]( JavaScript:alert(1) )", "klick"),
    ('[klick](javascript:alert(1) "Titel") und mehr', "klick und mehr"),
    ("[klick](<javascript:alert(1)>)", "klick"),
    ("![bild](data:text/html;base64,PHNjcmlwdD4=)", "bild"),
    ("<javascript:alert(1)>", "javascript:alert(1)"),
    ("[klick][a]\n[a]: javascript:alert(1)", "[klick][a]\n[a]: #"),
])
def test_unsafe_link_targets_are_dropped_but_the_label_stays(text, expected):
    assert defuse_links(text) == expected


@pytest.mark.parametrize("text", [
    "Mehr im [Artikel](https://example.org/artikel)",
    "[Seite](https://example.org/a_(b))",
    "Schreib an [uns](mailto:team@example.org)",
    "• Gehalt: 4.200 bis 5.200 €\n• Perspektiven",
])
def test_safe_links_and_plain_text_are_unchanged(text):
    assert defuse_links(text) == text


def test_cors_origins_must_be_explicit():
    assert _origins("http://a.example:8080, http://b.example/") == ["http://a.example:8080", "http://b.example"]
    with pytest.raises(ValueError):
        _origins("*")
    with pytest.raises(ValueError):
        _origins("")


@pytest.mark.parametrize("path", ["/../pyproject.toml", "/node_modules/rasa-webchat/package.json",
                                  "/.npmrc", "/package.json", "/%2e%2e/.env", "/sub/app.js"])
def test_web_server_serves_only_page_files(path):
    assert resolve(path) is None


def test_web_server_maps_the_page_and_the_widget_bundle():
    assert resolve("/") == WEB_DIR / "index.html"
    assert resolve("/app.js") == WEB_DIR / "app.js"
    assert resolve("/vendor/webchat.js") == WEBCHAT_BUNDLE


# --- end to end: real servers, real browser -------------------------------------------

# Markup as a careless edit of the knowledge source could bring it into an answer.
BOT_MARKUP = " <img src=x onerror=window.__xss=2> <b>fett</b> [mehr](javascript:window.__xss=3)"


@pytest.fixture(scope="module")
def widget_kb_url(tmp_path_factory) -> str:
    """The real knowledge source, with markup added to the "was kannst du?" reply."""
    folder = tmp_path_factory.mktemp("widget-kb")
    source = yaml.safe_load((PROJECT_ROOT / "data" / "knowledge" / "knowledge.yml").read_text(encoding="utf-8"))
    source["replies"]["capabilities"] = source["replies"]["capabilities"].rstrip() + BOT_MARKUP + "\n"
    (folder / "knowledge.yml").write_text(yaml.safe_dump(source, allow_unicode=True), encoding="utf-8")
    url = f"sqlite:///{folder / 'revierlotse.db'}"
    engine = make_engine(url)
    load_knowledge(engine, folder)
    engine.dispose()
    return url


@pytest.fixture(scope="module")
def site(model, widget_kb_url):
    """Action server, Rasa server and web page; only the page's origin may use socket.io."""
    web_port = free_port()
    origin = f"http://127.0.0.1:{web_port}"
    overrides = stack_overrides(widget_kb_url, WEB_HOST="127.0.0.1", WEB_PORT=str(web_port), CORS_ORIGINS=origin)
    with Stack.default(model, overrides, log_dir=ARTIFACTS / "logs" / "widget", web=True) as stack:
        stack.page_url = f"{origin}/"
        stack.origin = origin
        yield stack


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} missing: run `make install` (installs Debian's chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def context(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 860}, locale="de-DE")
    context.set_default_timeout(TIMEOUT_MS)
    yield context
    context.close()


def open_chat(context, site):
    page = context.new_page()
    page.goto(site.page_url)
    # The widget opens with the greeting and the topic buttons (initPayload /greet).
    page.locator(BOT, has_text="Glück auf").first.wait_for()
    page.locator(BUTTON, has_text="Gehalt").first.wait_for()
    return page


def send(page, text: str) -> None:
    page.fill(INPUT, text)
    page.click(SEND)
    page.locator(USER, has_text=text).last.wait_for()


def bot_texts(page):
    return page.locator(BOT).all_inner_texts()


def wait_for_bot_text(page, text: str) -> None:
    page.locator(BOT, has_text=text).first.wait_for()


def answered(page, act, marker: str = "Quelle:") -> None:
    """Do `act` and wait for the next bot bubble containing `marker` (the end of a knowledge answer)."""
    bubbles = page.locator(BOT, has_text=marker)
    shown = bubbles.count()
    act()
    bubbles.nth(shown).wait_for()
    page.locator(TYPING).wait_for(state="detached")


@pytest.mark.e2e
def test_page_says_what_the_bot_is_and_where_its_answers_come_from(context, site):
    page = open_chat(context, site)
    tagline = page.locator("#tagline").inner_text()
    assert "Chatbot" in tagline and "Artikel" in tagline and "Duisburg" in tagline
    assert page.locator("html").get_attribute("lang") == "de"
    greeting = page.locator(BOT).first.inner_text()
    assert "Revierlotse" in greeting
    titles = page.locator(BUTTON).all_inner_texts()
    assert titles[:6] == ["Gehalt", "Fähigkeiten", "Alltag", "Kultur", "Weiterbildung", "Perspektiven"]


@pytest.mark.e2e
def test_typed_and_clicked_questions_get_figures_and_survive_a_reload(context, site):
    page = open_chat(context, site)

    # Clicked: the greeting's "Gehalt" button gives the salary overview with both bands.
    answered(page, lambda: page.locator(BUTTON, has_text="Gehalt").first.click())
    conversation = "\n".join(bot_texts(page))
    assert "4.200 bis 5.200 €" in conversation and "5.800 bis 7.200 €" in conversation

    # Typed: a question with level and company type gets the matching band.
    senior_band = page.locator(BOT, has_text="5.800 bis 7.200 €")
    shown = senior_band.count()
    answered(page, lambda: send(page, "Was verdient man mit Teamleitung in einem alten Industriebetrieb?"))
    assert senior_band.count() > shown
    answers_before = bot_texts(page)
    assert any("Quelle:" in text for text in answers_before)

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "widget.png"), full_page=True)

    page.reload()
    page.locator(USER, has_text="Teamleitung in einem alten Industriebetrieb").first.wait_for()
    wait_for_bot_text(page, "Industriebetrieb")
    assert bot_texts(page) == answers_before
    # No second greeting: the conversation went on rather than starting again.
    assert sum("Glück auf" in text for text in bot_texts(page)) == 1

    # ... and the server still knows the conversation: a follow-up in the reloaded page is answered.
    send(page, "Und was muss ich können?")
    page.locator(BOT).nth(len(answers_before)).wait_for()


@pytest.mark.e2e
def test_bot_line_breaks_and_bullets_stay_readable(context, site):
    page = open_chat(context, site)
    answered(page, lambda: page.locator(BUTTON, has_text="Gehalt").first.click())
    bubble = page.locator(BOT, has_text="5.800 bis 7.200 €").first
    # innerText follows the rendering: each bullet of the answer starts its own line.
    lines = [line.strip() for line in bubble.inner_text().splitlines() if line.strip()]
    bullets = [line for line in lines if line.startswith("•")]
    assert len(bullets) >= 2, lines
    assert any("4.200 bis 5.200 €" in b for b in bullets) and any("5.800 bis 7.200 €" in b for b in bullets)


@pytest.mark.e2e
def test_markup_typed_by_the_user_is_shown_as_text_never_run(context, site):
    page = open_chat(context, site)
    attack = "<img src=x onerror=window.__xss=1>"
    bubbles = page.locator(BOT).count()
    send(page, attack)
    # The bot answers (whatever NLU makes of it) and the markup is visible as text.
    page.locator(BOT).nth(bubbles).wait_for()
    assert page.locator(USER).last.inner_text() == attack
    assert page.locator(".rw-messages-container img[src='x']").count() == 0
    assert page.evaluate("typeof window.__xss") == "undefined"


@pytest.mark.e2e
def test_markup_in_bot_text_is_shown_as_text_and_script_links_are_not_rendered(context, site):
    page = open_chat(context, site)
    send(page, "/ask_capabilities")
    wait_for_bot_text(page, "fett")
    bubble = page.locator(BOT, has_text="fett").first
    assert "<img src=x onerror=window.__xss=2>" in bubble.inner_text()
    assert "<b>fett</b>" in bubble.inner_text()
    assert bubble.locator("img, b").count() == 0
    assert page.locator(".rw-messages-container a[href^='javascript' i]").count() == 0
    assert page.evaluate("typeof window.__xss") == "undefined"
    # Second line of defence: the page forbids inline script and javascript: URLs.
    csp = page.evaluate("async () => (await fetch('/')).headers.get('content-security-policy')")
    script_src = csp.split("script-src")[1].split(";")[0]
    assert "'self'" in script_src and "unsafe" not in script_src


@pytest.mark.e2e
def test_two_tabs_are_two_conversations(context, site):
    first = open_chat(context, site)
    send(first, "Was verdient ein Einsteiger als IT Manager?")
    wait_for_bot_text(first, "4.200 bis 5.200 €")

    second = open_chat(context, site)  # same browser, new tab: its own sessionStorage
    assert second.locator(USER).count() == 0
    ids = [p.evaluate("() => JSON.parse(sessionStorage.getItem('chat_session') || '{}').session_id")
           for p in (first, second)]
    assert ids[0] and ids[1] and ids[0] != ids[1]


def polling_handshake(site, origin: str):
    """Engine.IO's first request as a browser on `origin` would send it."""
    port = site.settings.rasa_port
    req = urllib.request.Request(f"http://127.0.0.1:{port}/socket.io/?EIO=4&transport=polling",
                                 headers={"Origin": origin})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, resp.headers.get("Access-Control-Allow-Origin"), resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.headers.get("Access-Control-Allow-Origin"), err.read()


@pytest.mark.e2e
def test_socketio_refuses_a_foreign_origin(site):
    status, allow, body = polling_handshake(site, "http://evil.example")
    assert status == 400 and allow is None
    assert b"sid" not in body

    status, allow, body = polling_handshake(site, site.origin)
    assert status == 200 and allow == site.origin
    assert json.loads(body[body.index(b"{"):])["sid"]


@pytest.mark.e2e
def test_socketio_websocket_from_a_foreign_origin_is_refused(site, browser):
    """A page on another origin cannot open the socket from the browser either."""
    context = browser.new_context()
    try:
        page = context.new_page()
        page.route("http://evil.example/", lambda route: route.fulfill(
            status=200, content_type="text/html", body="<html><body>fremd</body></html>"))
        page.goto("http://evil.example/")
        port = site.settings.rasa_port
        result = page.evaluate("""port => new Promise(resolve => {
            const ws = new WebSocket(`ws://127.0.0.1:${port}/socket.io/?EIO=4&transport=websocket`);
            ws.onmessage = e => { resolve('open:' + e.data); ws.close(); };
            ws.onerror = () => resolve('refused');
            ws.onclose = () => resolve('refused');
        })""", port)
        assert result == "refused"
    finally:
        context.close()


@pytest.mark.e2e
def test_a_socket_cannot_speak_for_another_conversation(site):
    """Client B names victim A's session id in its message: A never hears of it."""
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    import socketio

    url = f"http://127.0.0.1:{site.settings.rasa_port}"
    headers = {"Origin": site.origin}

    async def scenario():
        victim, intruder = socketio.AsyncClient(), socketio.AsyncClient()
        heard = {"victim": [], "intruder": []}
        confirmed = {"victim": asyncio.Event(), "intruder": asyncio.Event()}
        sessions = {}
        source_line = asyncio.Event()

        for name, client in (("victim", victim), ("intruder", intruder)):
            def on_confirm(session_id, name=name):
                sessions[name] = session_id
                confirmed[name].set()

            def on_bot(message, name=name):
                heard[name].append(message.get("text", ""))
                if name == "victim" and "Quelle:" in message.get("text", ""):
                    source_line.set()

            client.on("session_confirm", on_confirm)
            client.on("bot_uttered", on_bot)
            await client.connect(url, headers=headers, transports=["polling"], wait_timeout=30)
            await client.emit("session_request", {"session_id": None})
        try:
            await asyncio.wait_for(asyncio.gather(*(e.wait() for e in confirmed.values())), 30)
            await intruder.emit("user_uttered", {"message": "Was verdient ein Einsteiger?",
                                                 "session_id": sessions["victim"]})
            await victim.emit("user_uttered", {"message": "/ask_skills", "session_id": sessions["victim"]})
            await asyncio.wait_for(source_line.wait(), 60)
        finally:
            await victim.disconnect()
            await intruder.disconnect()
        return heard

    # In its own thread: Playwright's sync API already runs an event loop in this one.
    with ThreadPoolExecutor(1) as pool:
        heard = pool.submit(asyncio.run, scenario()).result()
    assert heard["victim"] and not any("4.200 bis 5.200 €" in text for text in heard["victim"])
    assert heard["intruder"] == []
