"""`make telegram-webhook`: tell Telegram where to deliver the bot's updates.

Calls the Bot API's setWebhook with TELEGRAM_WEBHOOK_URL, TELEGRAM_SECRET_TOKEN (Telegram
then sends it in the X-Telegram-Bot-Api-Secret-Token header, which the channel checks),
drop_pending_updates and only the update types the channel handles, then setMyCommands
with the German command menu (/start, /hilfe, /datenschutz, /loeschen). Run it once after
deploying, and again whenever the URL, the secret or the commands change. The Rasa server itself
never calls the Bot API at start, so an unreachable Bot API cannot stop the bot.

Exit status: 0 registered, 1 Bot API unreachable or refused, 2 settings incomplete.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import re
import sys
from typing import List, Optional

import aiohttp
from aiogram.utils.exceptions import TelegramAPIError, ValidationError

from revierlotse.channels.telegram import COMMAND_MENU, HANDLED_UPDATES, make_bot
from revierlotse.settings import Settings, get_settings

logger = logging.getLogger("revierlotse.telegram_webhook")

WEBHOOK_PATH = "/webhooks/telegram/webhook"
SECRET_TOKEN = re.compile(r"[A-Za-z0-9_-]{1,256}")  # what the Bot API accepts


def settings_problems(settings: Settings) -> List[str]:
    """What is missing or wrong in the Telegram settings (empty: ready to register)."""
    problems = []
    if not settings.telegram_token:
        problems.append("TELEGRAM_TOKEN is empty (get one from @BotFather)")
    if not settings.telegram_webhook_url.startswith("https://"):
        problems.append("TELEGRAM_WEBHOOK_URL must be the bot's public https URL, "
                        f"e.g. https://bot.example.org{WEBHOOK_PATH}")
    elif not settings.telegram_webhook_url.rstrip("/").endswith(WEBHOOK_PATH):
        logger.warning("TELEGRAM_WEBHOOK_URL does not end with %s; make sure your proxy forwards it there",
                       WEBHOOK_PATH)
    if not SECRET_TOKEN.fullmatch(settings.telegram_secret_token):
        problems.append("TELEGRAM_SECRET_TOKEN must be 1-256 characters of A-Z a-z 0-9 _ - "
                        "(e.g. python -c 'import secrets; print(secrets.token_urlsafe(32))')")
    return problems


def command_menu() -> List[dict]:
    """The bot's command menu as setMyCommands wants it."""
    return [{"command": command, "description": description} for command, description in COMMAND_MENU]


async def register_webhook(settings: Settings) -> None:
    """setWebhook with our URL and secret, then the command menu; raises on network or
    API errors."""
    bot = make_bot(settings.telegram_token, settings.telegram_api_url)
    try:
        await bot.request("setWebhook", {
            "url": settings.telegram_webhook_url,
            "secret_token": settings.telegram_secret_token,
            "drop_pending_updates": "true",
            "allowed_updates": json.dumps(list(HANDLED_UPDATES)),
        })
        await bot.request("setMyCommands", {"commands": json.dumps(command_menu(), ensure_ascii=False)})
    finally:
        await bot.session.close()


def main(argv: Optional[List[str]] = None) -> int:
    argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter).parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    settings = get_settings()
    problems = settings_problems(settings)
    if problems:
        for problem in problems:
            logger.error("%s", problem)
        logger.error("Telegram webhook not registered: fix .env (see .env.example) and run `make telegram-webhook` again")
        return 2
    try:
        asyncio.run(register_webhook(settings))
    except ValidationError:
        logger.error("TELEGRAM_TOKEN is not a valid bot token (expected 123456:ABC...)")
        return 2
    except (aiohttp.ClientError, asyncio.TimeoutError, OSError, TelegramAPIError) as error:
        logger.warning("Could not register the Telegram webhook at %s: %s. The bot keeps running; "
                       "run `make telegram-webhook` again once the Bot API is reachable.",
                       settings.telegram_api_url, error or type(error).__name__)
        return 1
    logger.info("Telegram webhook registered: %s (secret token set, pending updates dropped); "
                "command menu set: %s", settings.telegram_webhook_url,
                ", ".join(f"/{command}" for command, _ in COMMAND_MENU))
    return 0


if __name__ == "__main__":
    sys.exit(main())
