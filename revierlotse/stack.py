"""Starting and stopping the bot's processes: used by `make run` and by the tests.

    with Stack.default(model) as stack:      # action server + Rasa server, ready
        requests.post(stack.rasa_url + "/webhooks/rest/webhook", ...)

Each service is a child process in its own process group, started with the given
environment on top of the current one; `Stack` waits for each health URL and stops
everything (SIGTERM, then SIGKILL) on exit, Ctrl-C included.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from revierlotse.settings import PROJECT_ROOT, Settings, load_settings

PY = sys.executable
_PR_SET_PDEATHSIG = 1


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now (for a service to take)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _detach_but_die_with_parent() -> None:
    """In the child: own process group (Ctrl-C reaches only the supervisor, which stops
    the services in order), and SIGTERM if the supervisor dies without stopping them."""
    os.setsid()
    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


@dataclass
class Service:
    name: str
    argv: List[str]
    health_url: str
    env: Dict[str, str] = field(default_factory=dict)
    log_path: Optional[Path] = None
    proc: Optional[subprocess.Popen] = None

    def start(self) -> None:
        env = {**os.environ, **self.env}
        out = open(self.log_path, "ab") if self.log_path else None  # noqa: SIM115 - closed in stop()
        self._log = out
        self.proc = subprocess.Popen(
            self.argv, cwd=PROJECT_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT if out else None,
            preexec_fn=_detach_but_die_with_parent,
        )

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(self.health_url, timeout=2) as resp:
                return resp.status < 500
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
            return False

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}; log: {self.log_path}")
            if self.healthy():
                return
            time.sleep(0.25)
        raise TimeoutError(f"{self.name} not ready after {timeout:.0f} s; log: {self.log_path}")

    def stop(self, grace: float = 10.0) -> None:
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(grace)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
            except ProcessLookupError:
                pass
        if getattr(self, "_log", None):
            self._log.close()
            self._log = None


def settings_env(settings: Settings) -> Dict[str, str]:
    """The settings as environment variables, for child processes."""
    return {
        "DATABASE_URL": settings.database_url,
        "RASA_PORT": str(settings.rasa_port),
        "ACTION_SERVER_HOST": settings.action_server_host,
        "ACTION_SERVER_PORT": str(settings.action_server_port),
        "WEB_PORT": str(settings.web_port),
        "RASA_TELEMETRY_ENABLED": "false",
    }


def action_server(settings: Settings, env: Dict[str, str], log_dir: Optional[Path]) -> Service:
    return Service(
        "action server",
        [PY, "-m", "revierlotse.launch", "actions"],
        f"http://{settings.action_server_host}:{settings.action_server_port}/health",
        env, log_dir / "actions.log" if log_dir else None,
    )


def rasa_server(settings: Settings, model: Path, env: Dict[str, str], log_dir: Optional[Path],
                extra_args: List[str] = ()) -> Service:
    args = [
        PY, "-m", "revierlotse.launch", "rasa", "run",
        "--model", str(model), "--endpoints", "endpoints.yml", "--credentials", "credentials.yml",
        "--interface", settings.rasa_host, "--port", str(settings.rasa_port),
        *extra_args,
    ]
    if settings.rasa_api_enabled:
        args += ["--enable-api", "--auth-token", settings.rasa_api_token]
    return Service("rasa server", args, f"{settings.rasa_url}/webhooks/rest/", env,
                   log_dir / f"rasa-{settings.rasa_port}.log" if log_dir else None)


def web_server(settings: Settings, env: Dict[str, str], log_dir: Optional[Path]) -> Service:
    """The landing page with the chat widget (revierlotse.web)."""
    return Service("web server", [PY, "-m", "revierlotse.web"],
                   f"http://{settings.web_host}:{settings.web_port}/health",
                   env, log_dir / f"web-{settings.web_port}.log" if log_dir else None)


class Stack:
    """A set of services started in order and stopped in reverse order."""

    def __init__(self, services: List[Service], ready_timeout: float = 180.0) -> None:
        self.services = services
        self.ready_timeout = ready_timeout
        self.rasa_urls: List[str] = []

    @classmethod
    def default(cls, model: Path, overrides: Optional[Dict[str, str]] = None,
                log_dir: Optional[Path] = None, extra_services: List[Service] = (),
                web: bool = False, replica_ports: Sequence[int] = ()) -> "Stack":
        """Action server + Rasa server (+ the web page with `web`) with `overrides` on top of the environment/.env.

        Every port in `replica_ports` adds another Rasa server (a replica: same model,
        database and lock store; more than one needs REDIS_URL).
        """
        overrides = dict(overrides or {})
        base = {**_dotenv_and_environ(), **overrides}
        settings = load_settings(base)
        env = {**settings_env(settings), **overrides}
        if log_dir:
            log_dir.mkdir(parents=True, exist_ok=True)
        replicas = []
        for number, port in enumerate(replica_ports, start=2):
            replica = load_settings({**base, "RASA_PORT": str(port)})
            service = rasa_server(replica, model, {**env, "RASA_PORT": str(port)}, log_dir)
            service.name = f"rasa server {number}"
            replicas.append((service, replica.rasa_url))
        stack = cls([action_server(settings, env, log_dir), rasa_server(settings, model, env, log_dir),
                     *(service for service, _ in replicas),
                     *([web_server(settings, env, log_dir)] if web else []), *extra_services])
        stack.settings = settings
        stack.rasa_urls = [settings.rasa_url, *(url for _, url in replicas)]
        return stack

    @property
    def rasa_url(self) -> str:
        return self.settings.rasa_url

    def rasa_services(self) -> List[Service]:
        """The Rasa server and its replicas."""
        return [s for s in self.services if s.name.startswith("rasa server")]

    @property
    def web_url(self) -> str:
        from revierlotse.web import page_url

        return page_url(self.settings)

    def service(self, name: str) -> Service:
        return next(s for s in self.services if s.name == name)

    def start(self) -> "Stack":
        try:
            for service in self.services:
                service.start()
            for service in self.services:
                service.wait_ready(self.ready_timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        for service in reversed(self.services):
            service.stop()

    def __enter__(self) -> "Stack":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def _dotenv_and_environ() -> Dict[str, str]:
    from dotenv import dotenv_values

    return {**{k: v for k, v in dotenv_values(PROJECT_ROOT / ".env").items() if v is not None}, **os.environ}
