"""Conversation locks: atomic in Redis when REDIS_URL is set, in-process otherwise.

Rasa processes one message per conversation at a time by holding a lock on the sender
id. With several replicas the lock must live outside the process. Rasa's open-source
`RedisLockStore` reads the lock, changes it in Python and writes it back (GET then SET),
so two replicas can both believe they hold it. This one uses Redis primitives that are
atomic on the server:

    acquire:  SET key token NX PX lifetime      (only if nobody holds it)
    renew:    compare token, then PEXPIRE       (one Lua script)
    release:  compare token, then DEL           (one Lua script: never frees a lock
                                                 that expired and went to someone else)

The lock has a short lifetime (`DEFAULT_LOCK_LIFETIME_SECONDS`) and is renewed while its
holder is alive, so a long turn keeps it and a crashed replica frees it within one
lifetime. Waiters poll (not first-come-first-served: fine for one user's messages).
"""

from __future__ import annotations

import asyncio
import logging
import os
import uuid
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, AsyncGenerator, Optional, Text

import redis.asyncio
from rasa.core.lock_store import InMemoryLockStore, LockError, LockStore
from rasa.utils.endpoints import EndpointConfig

logger = logging.getLogger(__name__)

# A lock unrenewed for this long is free again (its holder died). Renewed every third.
DEFAULT_LOCK_LIFETIME_SECONDS = 30.0
# Poll interval while waiting: starts small (contention is short), grows to the cap.
_FIRST_POLL_SECONDS = 0.01
_MAX_POLL_SECONDS = 0.2

_RENEW = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('pexpire', KEYS[1], ARGV[2])
end
return 0
"""
_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('del', KEYS[1])
end
return 0
"""


@dataclass(frozen=True)
class HeldLock:
    """Proof of holding the lock on `conversation_id`: only `token` can release it."""

    conversation_id: Text
    token: Text


class RedisAtomicLockStore(LockStore):
    """Per-conversation mutex in Redis with atomic acquire, renew and release."""

    def __init__(
        self,
        url: Text,
        lock_lifetime: float = DEFAULT_LOCK_LIFETIME_SECONDS,
        wait_timeout: Optional[float] = None,
        key_prefix: Text = "revierlotse:lock:",
        socket_timeout: float = 10.0,
    ) -> None:
        super().__init__()
        self.redis = redis.asyncio.Redis.from_url(url, socket_timeout=socket_timeout)
        self.lock_lifetime = float(lock_lifetime)
        # Waiting longer than a lifetime means the holder keeps renewing: give up then.
        self.wait_timeout = float(wait_timeout) if wait_timeout is not None else 2 * self.lock_lifetime
        self.key_prefix = key_prefix
        self._renew = self.redis.register_script(_RENEW)
        self._release = self.redis.register_script(_RELEASE)

    def key(self, conversation_id: Text) -> Text:
        return self.key_prefix + conversation_id

    async def try_acquire(self, conversation_id: Text, lifetime: Optional[float] = None) -> Optional[HeldLock]:
        """Take the lock if it is free (one atomic SET NX PX), else return None."""
        token = uuid.uuid4().hex
        ms = int((lifetime or self.lock_lifetime) * 1000)
        if await self.redis.set(self.key(conversation_id), token, nx=True, px=ms):
            return HeldLock(conversation_id, token)
        return None

    async def acquire(self, conversation_id: Text, lifetime: Optional[float] = None,
                      wait_timeout: Optional[float] = None) -> HeldLock:
        """Wait until the lock is free and take it; LockError after `wait_timeout`."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + (self.wait_timeout if wait_timeout is None else wait_timeout)
        pause = _FIRST_POLL_SECONDS
        while True:
            held = await self.try_acquire(conversation_id, lifetime)
            if held:
                return held
            if loop.time() >= deadline:
                raise LockError(f"Could not acquire lock for conversation_id '{conversation_id}'.")
            await asyncio.sleep(pause)
            pause = min(pause * 1.5, _MAX_POLL_SECONDS)

    async def renew(self, held: HeldLock, lifetime: Optional[float] = None) -> bool:
        """Extend the lock if `held` still owns it."""
        ms = int((lifetime or self.lock_lifetime) * 1000)
        return bool(await self._renew(keys=[self.key(held.conversation_id)], args=[held.token, ms]))

    async def release(self, held: HeldLock) -> bool:
        """Delete the lock only if `held` still owns it; False if it was not ours any more."""
        return bool(await self._release(keys=[self.key(held.conversation_id)], args=[held.token]))

    @asynccontextmanager
    async def lock(
        self,
        conversation_id: Text,
        lock_lifetime: Optional[float] = None,
        wait_time_in_seconds: Optional[float] = None,
    ) -> AsyncGenerator[HeldLock, None]:
        """Hold the conversation's lock for the block (what Rasa calls per message).

        Rasa passes its own ticket-lock defaults, which do not apply here: the store's
        lifetime and wait timeout are used.
        """
        held = await self.acquire(conversation_id)
        keeper = asyncio.create_task(self._keep_alive(held))
        try:
            yield held
        finally:
            keeper.cancel()
            try:
                released = await self.release(held)
            except redis.RedisError as error:  # the turn is done; the lock expires by itself
                logger.warning("Could not release a conversation lock (expires in %.0f s): %s",
                               self.lock_lifetime, error)
            else:
                if not released:
                    logger.warning("Lock on a conversation expired before its turn ended (lifetime %.0f s).",
                                   self.lock_lifetime)

    async def _keep_alive(self, held: HeldLock) -> None:
        while True:
            await asyncio.sleep(self.lock_lifetime / 3)
            try:
                if not await self.renew(held):
                    return
            except redis.RedisError as error:  # keep trying: the next renewal may succeed
                logger.warning("Could not renew a conversation lock: %s", error)

    # Rasa's ticket-lock API: not used with this store (everything goes through `lock`).
    def get_lock(self, conversation_id: Text):
        raise NotImplementedError("RedisAtomicLockStore has no ticket locks; use lock().")

    def delete_lock(self, conversation_id: Text) -> None:
        raise NotImplementedError("RedisAtomicLockStore has no ticket locks; use lock().")

    def save_lock(self, lock) -> None:
        raise NotImplementedError("RedisAtomicLockStore has no ticket locks; use lock().")


def lock_store_for(url: Optional[Text], **kwargs: Any) -> LockStore:
    """The Redis lock store for `url`, or Rasa's in-process one when `url` is empty."""
    if url:
        return RedisAtomicLockStore(url, **kwargs)
    if int(os.environ.get("SANIC_WORKERS", "1") or 1) > 1:
        # Rasa allows several workers with any custom lock store; in-process locks
        # would then not exclude each other.
        raise ValueError("SANIC_WORKERS > 1 needs REDIS_URL: in-process locks do not span workers.")
    return InMemoryLockStore()


class ConfiguredLockStore:
    """What endpoints.yml names (`url: ${REDIS_URL}`).

    Rasa builds a custom lock store as `Class(endpoint_config=...)`. This class only
    chooses: constructing it returns a `RedisAtomicLockStore` when the URL is set and an
    `InMemoryLockStore` (one replica) when REDIS_URL is empty.
    """

    def __new__(cls, endpoint_config: Optional[EndpointConfig] = None) -> LockStore:  # type: ignore[misc]
        if endpoint_config is None:
            return lock_store_for(None)
        return lock_store_for(endpoint_config.url, **endpoint_config.kwargs)
