"""Atomic conversation locks in the real Redis: one holder at a time, across replicas.

Tests use unique keys and delete them.
"""

from __future__ import annotations

import asyncio
import uuid

import pytest
import redis
from rasa.core.lock_store import LockError

from revierlotse.stores.lock_store import HeldLock, RedisAtomicLockStore


@pytest.fixture
def locks(redis_url):
    """Two lock stores on one Redis, as two replicas have; unique keys, removed after."""
    prefix = f"test:lock:{uuid.uuid4().hex[:8]}:"
    stores = []

    def make(**kwargs) -> RedisAtomicLockStore:
        store = RedisAtomicLockStore(redis_url, key_prefix=prefix, **kwargs)
        stores.append(store)
        return store

    yield make
    client = redis.Redis.from_url(redis_url)
    for key in client.scan_iter(f"{prefix}*"):
        client.delete(key)
    client.close()


def run(coro):
    return asyncio.run(coro)


def test_second_holder_cannot_acquire_until_release(locks):
    replica_a, replica_b = locks(), locks()

    async def scenario():
        held = await replica_a.try_acquire("c1")
        assert held is not None
        assert await replica_b.try_acquire("c1") is None
        assert await replica_a.try_acquire("c1") is None  # not re-entrant either
        assert await replica_b.try_acquire("c2") is not None  # other conversations are free
        assert await replica_a.release(held) is True
        assert await replica_b.try_acquire("c1") is not None
    run(scenario())


def test_acquire_sets_value_and_lifetime_in_one_command(locks):
    store = locks(lock_lifetime=30)

    async def scenario():
        held = await store.try_acquire("c1")
        assert await store.redis.get(store.key("c1")) == held.token.encode()
        assert 0 < await store.redis.pttl(store.key("c1")) <= 30_000  # never a lock without expiry
    run(scenario())


def test_release_by_non_owner_does_not_delete(locks):
    owner, other = locks(), locks()

    async def scenario():
        held = await owner.try_acquire("c1")
        assert await other.release(HeldLock("c1", "not-the-owner")) is False
        assert await other.redis.get(other.key("c1")) == held.token.encode()
        assert await other.try_acquire("c1") is None
        assert await owner.release(held) is True
        assert await owner.redis.exists(owner.key("c1")) == 0
    run(scenario())


def test_lock_expires_after_its_lifetime_and_stale_release_spares_the_new_holder(locks):
    crashed, waiting = locks(), locks()

    async def scenario():
        stale = await crashed.try_acquire("c1", lifetime=0.3)  # holder dies, never releases
        assert stale is not None
        fresh = await waiting.acquire("c1", wait_timeout=30)  # returns once the lock expired
        assert await crashed.release(stale) is False  # late release of the expired lock
        assert await waiting.redis.get(waiting.key("c1")) == fresh.token.encode()
        assert await waiting.release(fresh) is True
    run(scenario())


def test_waiting_gives_up_with_lock_error(locks):
    holder, waiter = locks(), locks()

    async def scenario():
        await holder.try_acquire("c1")
        with pytest.raises(LockError):
            await waiter.acquire("c1", wait_timeout=0)
    run(scenario())


def test_held_lock_is_renewed_while_its_turn_runs(locks):
    store, other = locks(lock_lifetime=0.3), locks()

    async def scenario():
        async with store.lock("c1") as held:
            await asyncio.sleep(1.0)  # a turn that outlasts the lifetime several times
            assert await other.try_acquire("c1") is None
            assert await store.redis.get(store.key("c1")) == held.token.encode()
        assert await other.try_acquire("c1") is not None  # released at the end of the turn
    run(scenario())


def test_turns_on_one_conversation_never_overlap_across_replicas(locks):
    replicas = [locks(), locks()]
    inside, overlaps, done = [0], [0], []

    async def turn(number: int) -> None:
        async with replicas[number % 2].lock("c1"):
            inside[0] += 1
            overlaps[0] = max(overlaps[0], inside[0])
            await asyncio.sleep(0)  # yield inside the critical section: others must wait
            await asyncio.sleep(0.005)
            done.append(number)
            inside[0] -= 1

    async def scenario():
        await asyncio.gather(*(turn(n) for n in range(30)))
    run(scenario())
    assert overlaps[0] == 1
    assert sorted(done) == list(range(30))
