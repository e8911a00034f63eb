"""The website: a landing page with the chat widget, `python -m revierlotse.web`.

Serves only what the page needs, from a fixed list: the files directly in web/
(index.html, style.css, app.js), the two widget bundles that `make install` puts in
web/node_modules (deep-chat, socket.io-client), `/config.json` (where the widget finds
Rasa's socket.io channel) and `/health`. The page's privacy notice names the retention
period: `{{RETENTION}}` in index.html becomes RETENTION_DAYS ("30 Tage"). Every
response, error pages included, carries a Content-Security-Policy that allows scripts
from this server only (so even a link or markup that slipped into a chat bubble cannot
run script) and connections only to this server and the socket.io URL the widget uses,
named host by host from the settings. Request lines are logged with control characters
escaped, so a request cannot forge or garble log lines.
"""

from __future__ import annotations

import json
import logging
import mimetypes
import re
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import List, Optional
from urllib.parse import urlsplit

from revierlotse.settings import PROJECT_ROOT, Settings, get_settings

WEB_DIR = PROJECT_ROOT / "web"
NODE_MODULES = WEB_DIR / "node_modules"
# URL path -> the npm file it serves (versions pinned in web/package-lock.json).
VENDOR = {
    "/vendor/deep-chat.js": NODE_MODULES / "deep-chat" / "dist" / "deepChat.bundle.js",
    "/vendor/socket.io.js": NODE_MODULES / "socket.io-client" / "dist" / "socket.io.min.js",
}
RETENTION_TOKEN = b"{{RETENTION}}"
PAGE_FILES = {".html", ".css", ".js", ".svg", ".png", ".ico"}
# C0 and C1 control characters and DEL, as \xNN in the log.
_LOG_ESCAPES = {c: f"\\x{c:02x}" for c in [*range(0x20), *range(0x7f, 0xa0)]}

logger = logging.getLogger("revierlotse.web")


def socket_sources(settings: Settings) -> List[str]:
    """Where the widget's socket.io connects, polling (http) and websocket (ws), no wildcard.

    With WEB_SOCKET_URL that URL; otherwise app.js connects to the page's own host name on
    RASA_PORT, and the page is served only to the origins in CORS_ORIGINS: those host
    names on RASA_PORT.
    """
    if settings.web_socket_url:
        parts = [urlsplit(settings.web_socket_url.strip())]
        bases = [(p.scheme, p.netloc) for p in parts if p.scheme in {"http", "https"} and p.netloc]
    else:
        bases = []
        for origin in settings.cors_origins:
            parts = urlsplit(origin.strip())
            if parts.scheme in {"http", "https"} and parts.hostname:
                host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
                bases.append((parts.scheme, f"{host}:{settings.rasa_port}"))
    sources: List[str] = []
    for scheme, netloc in bases:
        for source in (f"{scheme}://{netloc}", f"{'wss' if scheme == 'https' else 'ws'}://{netloc}"):
            if source not in sources and _SOURCE.fullmatch(source):
                sources.append(source)
    return sources


# A CSP host source as we write it: scheme, host (or [v6]), optional port, nothing else.
_SOURCE = re.compile(r"(https?|wss?)://([A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(:\d{1,5})?")


def content_security_policy(settings: Settings) -> str:
    """Scripts only from here; connections only to here and the widget's socket.io URL."""
    return "; ".join([
        "default-src 'self'",
        "script-src 'self'",
        # The widget injects its own <style> elements.
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data:",
        "font-src 'self' data:",
        " ".join(["connect-src 'self'", *socket_sources(settings)]),
        "object-src 'none'",
        "base-uri 'none'",
        "frame-ancestors 'none'",
    ])


def widget_config(settings: Settings) -> dict:
    """What app.js needs to reach Rasa's socket.io channel."""
    return {"socketUrl": settings.web_socket_url or None, "rasaPort": settings.rasa_port}


def retention_text(days: int) -> str:
    """How long conversations are kept, as the privacy notice says it: "30 Tage" (no line break inside)."""
    return f"{days}\u00a0Tag" if days == 1 else f"{days}\u00a0Tage"


def resolve(path: str) -> Optional[Path]:
    """The file for a URL path, or None: only top-level page files and the widget bundles."""
    if path == "/":
        return WEB_DIR / "index.html"
    if path in VENDOR:
        return VENDOR[path]
    name = path.lstrip("/")
    if "/" in name or "\\" in name or name.startswith(".") or Path(name).suffix not in PAGE_FILES:
        return None
    return WEB_DIR / name


class PageHandler(BaseHTTPRequestHandler):
    settings: Settings = None  # set by make_server

    def version_string(self) -> str:
        return "Revierlotse"

    def do_GET(self) -> None:  # noqa: N802 - http.server API
        path = urlsplit(self.path).path
        if path == "/health":
            return self._send(HTTPStatus.OK, b'{"status": "ok"}', "application/json")
        if path == "/config.json":
            body = json.dumps(widget_config(self.settings)).encode()
            return self._send(HTTPStatus.OK, body, "application/json")
        file = resolve(path)
        if file is None or not file.is_file():
            hint = " (run `make install`)" if file in VENDOR.values() else ""
            return self._send(HTTPStatus.NOT_FOUND, f"Nicht gefunden{hint}\n".encode(), "text/plain; charset=utf-8")
        ctype = mimetypes.guess_type(file.name)[0] or "application/octet-stream"
        if ctype.startswith("text/") or ctype.endswith("javascript"):
            ctype += "; charset=utf-8"
        body = file.read_bytes()
        if file.suffix == ".html":
            body = body.replace(RETENTION_TOKEN, retention_text(self.settings.retention_days).encode())
        self._send(HTTPStatus.OK, body, ctype)

    def do_HEAD(self) -> None:  # noqa: N802
        self.do_GET()

    def send_error(self, code: int, message: Optional[str] = None, explain: Optional[str] = None) -> None:
        """Errors http.server answers itself (bad request line, unknown method, too long
        a header ...) as plain German text with the same headers as every page."""
        try:
            status = HTTPStatus(code)
        except ValueError:
            status = HTTPStatus.BAD_REQUEST
        self.close_connection = True
        # A request line http.server could not read leaves the version at HTTP/0.9,
        # which would send the body without status line and headers.
        if getattr(self, "request_version", "HTTP/0.9") == "HTTP/0.9":
            self.request_version = "HTTP/1.0"
        body = f"Fehler {status.value}: Diese Anfrage kann der Server nicht beantworten.\n".encode()
        self._send(status, body, "text/plain; charset=utf-8")

    def _send(self, status: HTTPStatus, body: bytes, ctype: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-cache")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Referrer-Policy", "no-referrer")
        self.send_header("Content-Security-Policy", content_security_policy(self.settings))
        self.send_header("X-Frame-Options", "DENY")
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - http.server API
        logger.info("%s %s", self.address_string(), escape_controls(format % args))


def escape_controls(text: str) -> str:
    """`text` with control characters (line breaks, ESC, ...) written as \\xNN."""
    return text.translate(_LOG_ESCAPES)


def make_server(settings: Settings) -> ThreadingHTTPServer:
    handler = type("Handler", (PageHandler,), {"settings": settings})
    return ThreadingHTTPServer((settings.web_host, settings.web_port), handler)


def page_url(settings: Settings) -> str:
    host = "localhost" if settings.web_host in {"0.0.0.0", "::", "127.0.0.1"} else settings.web_host
    return f"http://{host}:{settings.web_port}/"


def main() -> None:
    settings = get_settings()
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    for bundle in VENDOR.values():
        if not bundle.is_file():
            logger.warning("widget bundle missing at %s: run `make install`", bundle)
    server = make_server(settings)
    logger.info("serving the website at %s", page_url(settings))
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
