"""The website widget in a real browser: web page + socket.io channel + Rasa + actions.

Headless Debian Chromium driven by Playwright (`make install` installs both). One
stack (action server, Rasa server, web server) for the whole module, on free ports,
with CORS_ORIGINS set to the page's origin only. The widget is deep-chat; Playwright's
CSS selectors reach into its (open) shadow root. Accessibility is checked with axe-core
from web/node_modules (a dev dependency in web/package.json) and by hand where axe
cannot see: the live region, keyboard use, narrow screens, zoom, reduced motion.
"""

from __future__ import annotations

import json
import shutil
import threading
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml

from revierlotse.channels.socketio import _origins, defuse_links
from revierlotse.kb.loader import load_knowledge
from revierlotse.db import make_engine
from revierlotse.settings import PROJECT_ROOT, load_settings
from revierlotse.stack import Stack
from revierlotse.web import NODE_MODULES, VENDOR, WEB_DIR, make_server, resolve, retention_text
from tests.conftest import ARTIFACTS, free_port, stack_overrides

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]
SCREENSHOTS = ARTIFACTS / "screenshots"
TIMEOUT_MS = 60_000

# deep-chat's elements: bot text bubbles (not the bubble holding the bot's buttons), the
# "typing" bubble, user bubbles, the message list; the controls by their German names.
BOT = ".ai-message.text-message"
TYPING = ".loading-message-bubble"
USER = ".user-message-text"
MESSAGES = "#messages"
INPUT = "role=textbox[name='Schreib deine Frage an den Revierlotsen']"
SEND = "role=button[name='Senden']"
BUTTON = "button.reply"
NEW_CONVERSATION = "role=button[name='Neues Gespräch']"
DELETE_DATA = "role=button[name='Daten löschen']"
NOTICE = "#chat-privacy"
# Not the default (30): the notice must show the configured value.
RETENTION_DAYS = 21
AXE = NODE_MODULES / "axe-core" / "axe.min.js"
AXE_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"]


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


@pytest.mark.parametrize("path", ["/../pyproject.toml", "/node_modules/deep-chat/package.json",
                                  "/vendor/axe.min.js", "/node_modules/axe-core/axe.min.js",
                                  "/.npmrc", "/package.json", "/%2e%2e/.env", "/sub/app.js"])
def test_web_server_serves_only_page_files(path):
    assert resolve(path) is None


def test_web_server_maps_the_page_and_the_widget_bundles():
    assert resolve("/") == WEB_DIR / "index.html"
    assert resolve("/app.js") == WEB_DIR / "app.js"
    assert resolve("/vendor/deep-chat.js") == NODE_MODULES / "deep-chat" / "dist" / "deepChat.bundle.js"
    assert resolve("/vendor/socket.io.js") == NODE_MODULES / "socket.io-client" / "dist" / "socket.io.min.js"
    assert set(VENDOR) == {"/vendor/deep-chat.js", "/vendor/socket.io.js"}


def test_widget_dependencies_are_pinned_and_axe_is_a_dev_dependency():
    package = json.loads((WEB_DIR / "package.json").read_text(encoding="utf-8"))
    lock = json.loads((WEB_DIR / "package-lock.json").read_text(encoding="utf-8"))
    assert set(package["dependencies"]) == {"deep-chat", "socket.io-client"}
    assert "axe-core" in package["devDependencies"] and "axe-core" not in package["dependencies"]
    for name, version in {**package["dependencies"], **package["devDependencies"]}.items():
        assert version[0].isdigit(), f"{name} is pinned to an exact version"
        assert lock["packages"][f"node_modules/{name}"]["version"] == version


def test_retention_is_said_in_days():
    assert retention_text(30) == "30\u00a0Tage"
    assert retention_text(1) == "1\u00a0Tag"


def test_page_server_puts_the_retention_period_into_the_privacy_notice():
    settings = load_settings({"WEB_HOST": "127.0.0.1", "WEB_PORT": str(free_port()), "RETENTION_DAYS": "7"},
                             dotenv=False)
    server = make_server(settings)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        base = f"http://127.0.0.1:{settings.web_port}"
        with urllib.request.urlopen(f"{base}/", timeout=10) as resp:
            page = resp.read().decode("utf-8")
    finally:
        server.shutdown()
        server.server_close()
    assert "{{" not in page
    assert "7\u00a0Tage nach deiner letzten Nachricht" in page


# --- end to end: real servers, real browser -------------------------------------------

# Markup as a careless edit of the knowledge source could bring it into an answer.
BOT_MARKUP = " <img src=x onerror=window.__xss=2> <b>fett</b> [mehr](javascript:window.__xss=3)"


@pytest.fixture(scope="module")
def widget_kb_url(tmp_path_factory) -> str:
    """The real knowledge source, with markup added to the "was kannst du?" reply."""
    folder = tmp_path_factory.mktemp("widget-kb") / "knowledge"
    shutil.copytree(PROJECT_ROOT / "data" / "knowledge", folder)
    source = yaml.safe_load((folder / "knowledge.yml").read_text(encoding="utf-8"))
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
    overrides = stack_overrides(widget_kb_url, WEB_HOST="127.0.0.1", WEB_PORT=str(web_port), CORS_ORIGINS=origin,
                                RETENTION_DAYS=str(RETENTION_DAYS))
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


def open_chat(context, site, page=None):
    page = page or context.new_page()
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
    assert page.locator(f"{MESSAGES} img[src='x']").count() == 0
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
    assert page.locator(f"{MESSAGES} a[href^='javascript' i]").count() == 0
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


# --- privacy notice, controls, accessibility ---------------------------------------------

def stored_session(page) -> dict:
    return page.evaluate("() => JSON.parse(sessionStorage.getItem('chat_session') || '{}')")


class SentFrames:
    """Everything the page sends to socket.io, over websocket frames or polling POSTs."""

    def __init__(self, page) -> None:
        self.sent = []
        page.on("websocket", lambda ws: ws.on("framesent", self._frame))
        page.on("request", self._request)

    def _frame(self, payload) -> None:
        self.sent.append(payload if isinstance(payload, str) else payload.decode("utf-8", "replace"))

    def _request(self, request) -> None:
        if "/socket.io/" in request.url and request.method == "POST":
            self.sent.append(request.post_data or "")

    def user_messages(self):
        """The `user_uttered` events sent so far, as dicts."""
        found = []
        for data in self.sent:
            # Engine.IO may batch packets (\\x1e); a socket.io event is `42["name", {...}]`.
            for packet in data.split("\x1e"):
                if packet.startswith("42"):
                    name, *args = json.loads(packet[2:])
                    if name == "user_uttered":
                        found.append(args[0])
        return found


def run_axe(page, name: str) -> list:
    """axe-core on the whole page (deep-chat's shadow root included); results saved under artifacts/axe/.

    Run once hover and focus transitions have ended: mid-way, colours are a blend of two states.
    """
    page.wait_for_function("""() => {
        const root = document.querySelector('deep-chat').shadowRoot;
        return [...document.getAnimations(), ...root.getAnimations()].every(a => a.playState !== 'running');
    }""")
    page.evaluate(AXE.read_text(encoding="utf-8"))
    result = page.evaluate("tags => axe.run(document, {runOnly: {type: 'tag', values: tags}})", AXE_TAGS)
    folder = ARTIFACTS / "axe"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.json").write_text(json.dumps(
        {"violations": result["violations"], "passes": len(result["passes"]),
         "incomplete": [v["id"] for v in result["incomplete"]]}, indent=2, ensure_ascii=False), encoding="utf-8")
    return result["violations"]


def serious(violations) -> list:
    return [(v["id"], v["impact"], [n["target"] for n in v["nodes"]][:3])
            for v in violations if v["impact"] in {"serious", "critical"}]


# The element that has focus, through shadow roots, and whether its focus can be seen:
# an outline of at least 2 px on it or on deep-chat's input box around it (:focus-within).
FOCUSED = """() => {
    let el = document.activeElement;
    while (el && el.shadowRoot && el.shadowRoot.activeElement) el = el.shadowRoot.activeElement;
    if (!el || el === document.body) return null;
    const ring = e => { const s = getComputedStyle(e);
        return s.outlineStyle !== 'none' && parseFloat(s.outlineWidth) >= 2; };
    const box = el.id === 'text-input' ? el.getRootNode().getElementById('text-input-container') : null;
    return {id: el.id, tag: el.tagName.toLowerCase(), cls: el.className || '', text: (el.innerText || '').trim(),
            label: el.getAttribute('aria-label') || '', visible: ring(el) || (box !== null && ring(box))};
}"""


def focused(page):
    return page.evaluate(FOCUSED)


def tab_to(page, matches, key: str = "Tab", limit: int = 40):
    """Press `key` until the focused element satisfies `matches`; every stop must show its focus."""
    stops = []
    for _ in range(limit):
        page.keyboard.press(key)
        now = focused(page)
        if now is None:
            continue
        stops.append(now)
        assert now["visible"], f"no visible focus on {now}"
        if matches(now):
            return stops
    raise AssertionError(f"not reached with {key}: {stops}")


def no_horizontal_scroll(page) -> None:
    width = page.evaluate("() => [document.documentElement.scrollWidth, window.innerWidth]")
    assert width[0] <= width[1], f"page is {width[0]} px wide in a {width[1]} px window"


def inside_window(page, selector: str) -> None:
    box = page.locator(selector).first.bounding_box()
    window = page.evaluate("() => window.innerWidth")
    assert box and box["x"] >= 0 and box["x"] + box["width"] <= window, f"{selector} at {box}, window {window} px"


@pytest.mark.e2e
def test_privacy_notice_says_what_is_stored_for_how_long_and_how_to_delete_it(context, site):
    page = open_chat(context, site)
    notice = page.locator(NOTICE)
    assert notice.is_visible()
    text = " ".join(notice.inner_text().split())
    assert "Nachrichten dieses Gesprächs" in text and "Datenbank" in text
    assert f"{RETENTION_DAYS} Tage nach deiner letzten Nachricht" in text
    assert "„Lösch meine Daten“" in text and "„Daten löschen“" in text
    # Seen with the first message, without scrolling: above the message list, in the window.
    notice_box, messages_box = notice.bounding_box(), page.locator(MESSAGES).bounding_box()
    assert notice_box["y"] + notice_box["height"] <= messages_box["y"] + 1
    assert notice_box["y"] >= 0 and notice_box["y"] + notice_box["height"] <= page.viewport_size["height"]


@pytest.mark.e2e
def test_axe_finds_no_serious_violation_with_the_chat_open_and_after_an_answer(context, site):
    page = open_chat(context, site)
    assert serious(run_axe(page, "chat-open")) == []
    answered(page, lambda: send(page, "Was verdient ein Einsteiger?"))
    assert serious(run_axe(page, "after-answer")) == []
    answered(page, lambda: page.locator(BUTTON, has_text="Weiterbildung").first.click())
    page.locator(DELETE_DATA).click()
    assert serious(run_axe(page, "delete-question")) == []


@pytest.mark.e2e
def test_axe_finds_no_serious_violation_on_a_phone(browser, site):
    context = browser.new_context(viewport={"width": 375, "height": 812}, locale="de-DE", is_mobile=True,
                                  has_touch=True, device_scale_factor=2)
    context.set_default_timeout(TIMEOUT_MS)
    try:
        page = open_chat(context, site)
        answered(page, lambda: page.locator(BUTTON, has_text="Gehalt").first.click())
        assert serious(run_axe(page, "phone-after-answer")) == []
    finally:
        context.close()


@pytest.mark.e2e
def test_new_messages_are_announced_and_every_control_has_a_german_name(context, site):
    page = open_chat(context, site)
    log = page.locator("role=log[name='Gesprächsverlauf']")
    assert log.get_attribute("aria-live") == "polite"
    # Bot bubbles (and their buttons) are added inside the log, so screen readers read them out.
    assert log.locator(BOT, has_text="Glück auf").count() == 1
    assert log.locator(BUTTON, has_text="Gehalt").count() == 1
    answered(page, lambda: send(page, "Was muss ich können?"))
    assert log.locator(BOT, has_text="Quelle:").count() >= 1
    assert page.locator("#chat-status").get_attribute("role") == "status"

    tree = page.locator("#chat-frame").aria_snapshot()
    for control in ['button "Neues Gespräch"', 'button "Daten löschen"', 'button "Senden"',
                    'textbox "Schreib deine Frage an den Revierlotsen"', 'group "Antwortvorschläge"',
                    'button "Gehalt"', 'heading "Chat mit Revierlotse"']:
        assert control in tree, f"{control} missing in\n{tree}"
    # No control without a name, none with an English one.
    names = page.evaluate("""() => {
        const root = document.querySelector('deep-chat').shadowRoot;
        const all = [...document.querySelectorAll('button, [role=button], [role=textbox], input, textarea'),
                     ...root.querySelectorAll('button, [role=button], [role=textbox], input, textarea')];
        return all.filter(e => e.offsetParent !== null).map(e => (e.getAttribute('aria-label') || e.innerText || '').trim());
    }""")
    assert names and all(names), names
    english = {"send", "submit", "close", "open", "menu", "message", "new chat", "delete"}
    assert not [n for n in names if n.lower() in english], names


@pytest.mark.e2e
def test_the_chat_works_with_the_keyboard_alone(context, site):
    page = open_chat(context, site)
    # From the top of the page: Tab reaches the controls, then the message field.
    stops = tab_to(page, lambda now: now["id"] == "text-input")
    reached = {stop["text"] or stop["label"] for stop in stops}
    assert {"Neues Gespräch", "Daten löschen", "Gehalt"} <= reached, reached

    # Type and send with Enter.
    answered(page, lambda: (page.keyboard.type("Was verdient ein Einsteiger?"), page.keyboard.press("Enter")))
    page.locator(USER, has_text="Was verdient ein Einsteiger?").wait_for()
    assert focused(page)["id"] == "text-input", "focus stays in the message field"

    # Back to a bot button with Shift+Tab, pick it with Enter, then another with Space.
    tab_to(page, lambda now: now["tag"] == "button" and now["text"] == "Weiterbildung", key="Shift+Tab")
    answered(page, lambda: page.keyboard.press("Enter"))
    page.locator(USER, has_text="Weiterbildung").wait_for()
    tab_to(page, lambda now: now["tag"] == "button" and now["text"] == "Kultur", key="Shift+Tab")
    answered(page, lambda: page.keyboard.press("Space"))
    page.locator(USER, has_text="Kultur").wait_for()

    # The send button is reachable too and sends with Enter.
    page.locator(INPUT).focus()
    page.keyboard.type("Und die Perspektiven?")
    tab_to(page, lambda now: now["label"] == "Senden")
    answered(page, lambda: page.keyboard.press("Enter"))
    page.locator(USER, has_text="Und die Perspektiven?").wait_for()

    # "Daten löschen" asks first; Escape closes the question and nothing is sent.
    tab_to(page, lambda now: now["id"] == "delete-data", key="Shift+Tab", limit=80)
    page.keyboard.press("Enter")
    assert focused(page)["id"] == "delete-yes"
    page.keyboard.press("Escape")
    assert page.locator("#delete-question").is_hidden()
    assert focused(page)["id"] == "delete-data"

    # "Neues Gespräch" with Enter: a fresh conversation, focus back in the message field.
    tab_to(page, lambda now: now["id"] == "new-conversation", key="Shift+Tab")
    page.keyboard.press("Enter")
    page.locator(BOT, has_text="Glück auf").first.wait_for()
    assert page.locator(USER).count() == 0
    assert focused(page)["id"] == "text-input"


@pytest.mark.e2e
def test_phone_screenshot_at_375_px(browser, site):
    context = browser.new_context(viewport={"width": 375, "height": 812}, locale="de-DE", is_mobile=True,
                                  has_touch=True, device_scale_factor=2)
    context.set_default_timeout(TIMEOUT_MS)
    try:
        page = open_chat(context, site)
        page.locator(NOTICE).scroll_into_view_if_needed()
        answered(page, lambda: page.locator(BUTTON, has_text="Gehalt").first.click())
        no_horizontal_scroll(page)
        for selector in (NOTICE, NEW_CONVERSATION, DELETE_DATA, INPUT, SEND, BUTTON):
            inside_window(page, selector)
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.locator("#chat-frame").scroll_into_view_if_needed()
        page.screenshot(path=str(SCREENSHOTS / "widget-375.png"))
        page.screenshot(path=str(SCREENSHOTS / "widget-375-full.png"), full_page=True)
    finally:
        context.close()


@pytest.mark.parametrize("viewport, scale", [
    ({"width": 320, "height": 640}, 1),   # the narrowest screen WCAG 1.4.10 asks for
    ({"width": 640, "height": 430}, 2),   # a 1280 x 860 window at 200 % zoom
], ids=["320px", "zoom-200"])
@pytest.mark.e2e
def test_narrow_screens_and_zoom_need_no_sideways_scrolling(browser, site, viewport, scale):
    context = browser.new_context(viewport=viewport, device_scale_factor=scale, locale="de-DE")
    context.set_default_timeout(TIMEOUT_MS)
    try:
        page = open_chat(context, site)
        answered(page, lambda: send(page, "Was verdient man mit Teamleitung in einem alten Industriebetrieb?"))
        no_horizontal_scroll(page)
        for selector in (NOTICE, NEW_CONVERSATION, DELETE_DATA, INPUT, SEND):
            inside_window(page, selector)
        # Answers wrap inside the chat rather than running out of it.
        frame = page.locator("#chat-frame").bounding_box()
        for bubble in page.locator(BOT).all():
            box = bubble.bounding_box()
            assert box["x"] >= frame["x"] and box["x"] + box["width"] <= frame["x"] + frame["width"] + 0.5
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / f"widget-{viewport['width']}px-x{scale}.png"), full_page=True)
    finally:
        context.close()


# Computed motion of a page button and of deep-chat's own "typing" dots.
MOTION = """() => {
    const root = document.querySelector('deep-chat').shadowRoot;
    const dots = document.createElement('div');
    dots.className = 'loading-message-dots';
    root.getElementById('messages').appendChild(dots);
    const result = {
        button: getComputedStyle(document.getElementById('new-conversation')).transitionDuration,
        reply: getComputedStyle(root.querySelector('button.reply')).transitionDuration,
        dots: getComputedStyle(dots).animationName,
        running: [...document.getAnimations(), ...root.getAnimations()].filter(a => a.playState === 'running').length,
    };
    dots.remove();
    return result;
}"""


@pytest.mark.e2e
def test_motion_respects_prefers_reduced_motion(browser, site):
    seen = {}
    for preference in ("no-preference", "reduce"):
        context = browser.new_context(reduced_motion=preference, locale="de-DE")
        context.set_default_timeout(TIMEOUT_MS)
        try:
            page = open_chat(context, site)
            answered(page, lambda: page.locator(BUTTON, has_text="Alltag").first.click())
            seen[preference] = page.evaluate(MOTION)
        finally:
            context.close()
    # Without the preference there is motion to turn off (so the check below means something) ...
    assert seen["no-preference"]["button"] != "0s" and seen["no-preference"]["dots"] != "none"
    # ... and with it, none: no transitions, no animations, nothing running.
    assert seen["reduce"] == {"button": "0s", "reply": "0s", "dots": "none", "running": 0}


@pytest.mark.e2e
def test_new_conversation_starts_a_fresh_session_with_an_empty_history(context, site, widget_kb_url):
    page = open_chat(context, site)
    answered(page, lambda: send(page, "Was verdient ein Einsteiger als IT Manager?"))
    old = stored_session(page)["session_id"]

    page.locator(NEW_CONVERSATION).click()
    page.locator(BOT, has_text="Glück auf").first.wait_for()
    page.locator(BUTTON, has_text="Gehalt").first.wait_for()
    assert page.locator("#chat-status").inner_text() == "Neues Gespräch gestartet."
    fresh = stored_session(page)
    assert fresh["session_id"] and fresh["session_id"] != old
    assert page.locator(USER).count() == 0
    assert sum("Glück auf" in text for text in bot_texts(page)) == 1
    assert [m["role"] for m in fresh["conversation"]] == ["ai", "ai"], fresh["conversation"]

    # The server starts the new session from nothing: the next answer knows no earlier turn,
    # and a reload shows only the new conversation.
    answered(page, lambda: send(page, "Und was muss ich können?"))
    page.reload()
    page.locator(USER, has_text="Und was muss ich können?").wait_for()
    assert page.locator(USER).all_inner_texts() == ["Und was muss ich können?"]
    assert stored_session(page)["session_id"] == fresh["session_id"]

    import sqlalchemy as sa

    engine = make_engine(widget_kb_url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(sa.text(
                "SELECT data FROM events WHERE sender_id = :sender AND type_name = 'user'"),
                {"sender": fresh["session_id"]}).scalars().all()
    finally:
        engine.dispose()
    texts = [json.loads(row).get("text") for row in rows]
    assert "Was verdient ein Einsteiger als IT Manager?" not in texts
    assert "Und was muss ich können?" in texts


@pytest.mark.e2e
def test_delete_data_asks_then_sends_the_deletion_request_and_clears_this_tab(context, site):
    page = context.new_page()
    frames = SentFrames(page)
    open_chat(context, site, page)
    answered(page, lambda: send(page, "Was verdient ein Einsteiger?"))
    session_id = stored_session(page)["session_id"]

    # Asked first; "Abbrechen" sends nothing.
    page.locator(DELETE_DATA).click()
    question = page.locator("#delete-question")
    assert question.is_visible() and "Wirklich löschen?" in question.inner_text()
    page.get_by_role("button", name="Abbrechen").click()
    assert question.is_hidden()
    assert not [m for m in frames.user_messages() if m["message"] == "/delete_data"]

    page.locator(DELETE_DATA).click()
    page.get_by_role("button", name="Ja, löschen").click()
    page.locator(USER, has_text="Daten löschen").wait_for()
    sent = None
    for _ in range(50):
        sent = [m for m in frames.user_messages() if m["message"] == "/delete_data"]
        if sent:
            break
        page.wait_for_timeout(100)
    assert sent and sent[0]["session_id"] == session_id, frames.sent[-5:]
    # This tab's copy is gone at once: only the request (and the bot's reply to it) remain.
    assert "Was verdient ein Einsteiger?" not in page.locator(USER).all_inner_texts()
    stored = stored_session(page)
    assert stored["session_id"] == session_id
    assert not any(m.get("text") == "Was verdient ein Einsteiger?" for m in stored["conversation"])


@pytest.mark.e2e
def test_a_restored_conversation_is_rendered_as_text_whatever_the_tab_stored(context, site):
    """Buttons are stored as data and built anew; stored markup is never rendered."""
    page = open_chat(context, site)
    session_id = stored_session(page)["session_id"]
    page.evaluate("""id => sessionStorage.setItem('chat_session', JSON.stringify({session_id: id, conversation: [
        {role: 'ai', text: 'Hallo <img src=x onerror=window.__xss=4>'},
        {role: 'ai', html: '<img src=x onerror=window.__xss=5>'},
        {role: 'ai', replies: [{title: '<img src=x onerror=window.__xss=6>', payload: '/ask_salary'}]},
    ]}))""", session_id)
    page.reload()
    page.locator(BOT, has_text="Hallo").wait_for()
    assert page.locator(BUTTON).all_inner_texts() == ["<img src=x onerror=window.__xss=6>"]
    assert page.locator(f"{MESSAGES} img").count() == 0
    assert page.evaluate("typeof window.__xss") == "undefined"
