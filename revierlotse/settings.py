"""All configuration of Revierlotse, read once from the environment or `.env`.

Every variable is documented in `.env.example`. Nothing else in the project reads
`os.environ` for its own settings: ask `get_settings()` instead.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from functools import lru_cache
from pathlib import Path
from typing import Dict, List, Optional

from dotenv import load_dotenv

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def _bool(value: str) -> bool:
    return value.strip().lower() in {"1", "true", "yes", "on"}


def _list(value: str) -> List[str]:
    return [item.strip() for item in value.split(",") if item.strip()]


@dataclass(frozen=True)
class Settings:
    """Typed view of the environment. Defaults are the embedded, single-machine set-up."""

    database_url: str = f"sqlite:///{PROJECT_ROOT / 'var' / 'revierlotse.db'}"
    knowledge_dir: str = str(PROJECT_ROOT / "data" / "knowledge")

    rasa_host: str = "0.0.0.0"
    rasa_port: int = 5005
    rasa_api_enabled: bool = False
    rasa_api_token: str = ""

    action_server_host: str = "127.0.0.1"
    action_server_port: int = 5055
    action_timeout_seconds: float = 10.0

    web_host: str = "127.0.0.1"
    web_port: int = 8080
    cors_origins: List[str] = field(default_factory=lambda: ["http://localhost:8080", "http://127.0.0.1:8080"])
    # Public URL of Rasa's socket.io channel for the widget; empty: same host as the page, RASA_PORT.
    web_socket_url: str = ""
    # Key that signs the widget's session ids; empty: a random one per Rasa process.
    session_secret: str = ""

    telegram_token: str = ""
    telegram_webhook_url: str = ""
    telegram_secret_token: str = ""
    telegram_api_url: str = "https://api.telegram.org"

    redis_url: str = ""
    rate_limit_per_minute: int = 30
    # Limits on what one message may carry (REST answers 413 beyond them).
    max_message_chars: int = 4000
    max_request_bytes: int = 16384
    retention_days: int = 30
    # Days in the operator report (`make report`) are calendar days in this time zone.
    report_timezone: str = "Europe/Berlin"
    log_level: str = "INFO"
    # Rasa patches that only make it faster (revierlotse.rasa36.speedups); false: off,
    # the behaviour patches (turn guard, apology, version hiding) stay.
    rasa_speedups: bool = True

    @property
    def action_endpoint_url(self) -> str:
        return f"http://{self.action_server_host}:{self.action_server_port}/webhook"

    @property
    def rasa_url(self) -> str:
        host = "127.0.0.1" if self.rasa_host in {"0.0.0.0", "::"} else self.rasa_host
        return f"http://{host}:{self.rasa_port}"


# Field annotations are strings (postponed evaluation), so casts are keyed by name.
_CASTS = {"bool": _bool, "int": int, "float": float, "str": str, "List[str]": _list}


def load_settings(env: Optional[Dict[str, str]] = None, dotenv: bool = True) -> Settings:
    """Build settings from `env` (default: the process environment plus `.env`)."""
    if env is None:
        if dotenv:
            load_dotenv(PROJECT_ROOT / ".env", override=False)
        env = dict(os.environ)
    values = {}
    for f in fields(Settings):
        raw = env.get(f.name.upper())
        if raw is None or raw == "":
            continue
        cast = _CASTS[f.type]
        values[f.name] = cast(raw)
    return Settings(**values)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return load_settings()


def rasa_environment(settings: Settings) -> Dict[str, str]:
    """Variables that endpoints.yml and credentials.yml expand with `${VAR}`.

    Rasa raises on an unset variable, so every one gets a value here, derived from
    the settings. The launcher exports them before Rasa reads the files.
    """
    return {
        "ACTION_ENDPOINT_URL": settings.action_endpoint_url,
        "ACTION_TIMEOUT_SECONDS": str(settings.action_timeout_seconds),
        "DATABASE_URL": settings.database_url,
        "REDIS_URL": settings.redis_url,
        "CORS_ORIGINS": ",".join(settings.cors_origins),
        "TELEGRAM_TOKEN": settings.telegram_token,
        "TELEGRAM_WEBHOOK_URL": settings.telegram_webhook_url,
        "TELEGRAM_SECRET_TOKEN": settings.telegram_secret_token,
        "TELEGRAM_API_URL": settings.telegram_api_url,
        "RATE_LIMIT_PER_MINUTE": str(settings.rate_limit_per_minute),
        "RASA_TELEMETRY_ENABLED": "false",
    }
