"""Forgetting a person: crypto-shredding. Written once for asyncio; ``privacy.py`` is generated.

Personal fields (or a whole payload) are encrypted with a key per data subject (AES-256-GCM,
from the ``cryptography`` package: ``pip install 'evstore[privacy]'``) before they are
appended. :meth:`AsyncPersonalData.forget` deletes the subject's key; from then on those
fields read back as :data:`REDACTED` - in reads, subscriptions and projections that open
events with :meth:`AsyncPersonalData.open`, also when rebuilt from scratch, and in exports
and copies, which carry the ciphertext and the key stream as they are - while the rest of
the event, its stream, version, position and the log's integrity stay intact.

Keys live in the store itself by default (:class:`AsyncStoreKeys`: one stream
``$keys-<subject>`` each; forgetting tombstones it, which removes the key's event on every
backend and refuses a new key for that subject), or in a key store you supply
(:class:`AsyncKeyStore`). An export taken before a ``forget`` still holds the key: forget
on the stores you keep, and expire old exports.

An encrypted value is stored as ``{"$personal": {"subject": ..., "nonce": ..., "data":
...}}``; the subject and field name are the cipher's associated data, so a value cannot be
moved to another subject or field unnoticed.
"""

from __future__ import annotations

import base64
import dataclasses
import os
import time
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from evstore import _codec
from evstore._types import NO_STREAM, NewEvent, RecordedEvent, Snapshot
from evstore.domain.redaction import REDACTED
from evstore.domain.registry import EventRegistry
from evstore.errors import ConcurrencyError, InvalidInput, StreamDeleted
from evstore.store.facade_async import AsyncEventStore

__all__ = ["REDACTED", "AsyncKeyStore", "AsyncPersonalData", "AsyncStoreKeys"]

MARK = "$personal"
KEY_EVENT = "SubjectKeyCreated"


def _aesgcm() -> Any:
    try:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    except ImportError as e:
        raise InvalidInput(
            "personal data needs the cryptography package: pip install 'evstore[privacy]'"
        ) from e
    return AESGCM


class AsyncKeyStore(Protocol):
    """Where subject keys live: supply your own (a KMS, a vault) or use :class:`AsyncStoreKeys`."""

    async def key(self, subject: str, create: bool) -> bytes | None:
        """The subject's 32-byte key; with ``create`` a new one when it has none yet.

        None when the subject was forgotten (then never a new key), or when it has no key
        and ``create`` is false.
        """
        ...

    async def forget(self, subject: str) -> bool:
        """Delete the subject's key for good; return whether one was stored."""
        ...


class AsyncStoreKeys:
    """Subject keys in the event store: stream ``<prefix><subject>``, one event holding the key."""

    def __init__(self, store: AsyncEventStore, *, prefix: str = "$keys-") -> None:
        self._store = store
        self._prefix = prefix

    async def key(self, subject: str, create: bool) -> bytes | None:
        sid = self._prefix + subject
        try:
            found = await self._store.get_events(sid, limit=1)
            if found:
                return bytes(found[0].data["key"])
            if not create:
                return None
            key: bytes = _aesgcm().generate_key(bit_length=256)
            await self._store.append(sid, [NewEvent(KEY_EVENT, {"key": key})], NO_STREAM)
            return key
        except StreamDeleted:
            return None  # forgotten
        except ConcurrencyError:  # another writer created it first: use theirs
            return bytes((await self._store.get_events(sid, limit=1))[0].data["key"])

    async def forget(self, subject: str) -> bool:
        sid = self._prefix + subject
        try:
            had = await self._store.stream_version(sid) > 0
            await self._store.delete_stream(sid, hard=True)
        except StreamDeleted:
            return False
        return had


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


class AsyncPersonalData:
    """Seal personal fields per data subject, open them on read, forget a subject.

    ``store`` keeps the keys unless ``keys`` is given. Mark fields when appending
    (:meth:`seal`, :meth:`new_event`, or :meth:`seal_event` for dataclass/pydantic events
    that list ``__personal__`` fields and name their ``__subject__`` field), and read with
    :meth:`open` (or wrap a handler with :meth:`opened`). ``key_cache_seconds`` keeps
    looked-up keys that long (default 0: every open looks the key up, so a ``forget`` by
    another process takes effect at once).
    """

    def __init__(
        self,
        store: AsyncEventStore,
        keys: AsyncKeyStore | None = None,
        *,
        key_cache_seconds: float = 0.0,
    ) -> None:
        if not isinstance(key_cache_seconds, int | float) or key_cache_seconds < 0:
            raise InvalidInput(f"key_cache_seconds must be >= 0, got {key_cache_seconds!r}")
        self._store = store
        self._keys: AsyncKeyStore = keys if keys is not None else AsyncStoreKeys(store)
        # Keys looked up in the last ``key_cache_seconds`` (0: none kept). A forget() here
        # clears it; a forget by another process takes effect when the entry expires.
        self._ttl = float(key_cache_seconds)
        self._cache: dict[str, tuple[float, bytes | None]] = {}

    async def _key(self, subject: str, create: bool) -> bytes | None:
        if self._ttl:
            hit = self._cache.get(subject)
            fresh = hit is not None and time.monotonic() - hit[0] < self._ttl
            if hit is not None and fresh and (hit[1] is not None or not create):
                return hit[1]
        key = await self._keys.key(subject, create)
        if self._ttl:
            if len(self._cache) >= 10_000:
                self._cache.clear()
            self._cache[subject] = (time.monotonic(), key)
        return key

    # -- writing ---------------------------------------------------------------------------

    async def seal(
        self, subject: str, data: dict[str, Any], fields: Iterable[str] | None = None
    ) -> dict[str, Any]:
        """``data`` with ``fields`` encrypted for ``subject`` (None: the whole payload)."""
        if not isinstance(subject, str) or not subject:
            raise InvalidInput(f"subject must be a non-empty str, got {subject!r}")
        if not isinstance(data, dict):
            raise InvalidInput(f"data must be a dict, got {type(data).__name__}")
        chosen = None if fields is None else list(fields)
        for name in chosen or ():
            if name not in data:
                raise InvalidInput(f"personal field {name!r} is not in the data")
        key = await self._key(subject, True)
        if key is None:
            raise InvalidInput(
                f"subject {subject!r} was forgotten: no personal data can be written for it"
            )
        if chosen is None:
            return {MARK: self._encrypt(key, subject, "", data)}
        out = dict(data)
        for name in chosen:
            out[name] = {MARK: self._encrypt(key, subject, name, {"v": data[name]})}
        return out

    async def new_event(
        self,
        type: str,
        data: dict[str, Any],
        *,
        subject: str,
        fields: Iterable[str] | None = None,
        **options: Any,
    ) -> NewEvent:
        """A :class:`NewEvent` whose personal ``fields`` (None: all of ``data``) are sealed."""
        return NewEvent(type, await self.seal(subject, data, fields), **options)

    async def seal_event(self, event: Any, registry: EventRegistry) -> NewEvent:
        """A domain event (dataclass or pydantic) as a sealed :class:`NewEvent`.

        Its class lists personal fields in ``__personal__`` and names the field holding the
        subject in ``__subject__``; ``registry`` (an :class:`~evstore.EventRegistry`)
        encodes it.
        """
        cls = type(event)
        fields = getattr(cls, "__personal__", None)
        subject_field = getattr(cls, "__subject__", None)
        if fields is None or subject_field is None:
            raise InvalidInput(f"{cls.__name__} must define __personal__ and __subject__")
        plain = registry.encode(event)
        subject = str(plain.data[subject_field])
        return dataclasses.replace(plain, data=await self.seal(subject, plain.data, fields))

    @staticmethod
    def _encrypt(key: bytes, subject: str, field: str, value: dict[str, Any]) -> dict[str, str]:
        nonce = os.urandom(12)
        sealed = _aesgcm()(key).encrypt(
            nonce, _codec.encode(value, "personal data"), f"{subject}\x00{field}".encode()
        )
        return {"subject": subject, "nonce": _b64(nonce), "data": _b64(sealed)}

    # -- reading ---------------------------------------------------------------------------

    async def open_data(self, data: dict[str, Any]) -> dict[str, Any]:
        """``data`` with every sealed field decrypted, or :data:`REDACTED` if forgotten.

        A sealed whole payload whose subject was forgotten reads as ``{"$personal":
        REDACTED}``.
        """
        keys: dict[str, bytes | None] = {}
        if _is_sealed(data.get(MARK)) and len(data) == 1:
            opened = await self._decrypt(data[MARK], "", keys)
            return {MARK: REDACTED} if opened is REDACTED else dict(opened)
        out = dict(data)
        for name, value in data.items():
            if isinstance(value, dict) and len(value) == 1 and _is_sealed(value.get(MARK)):
                opened = await self._decrypt(value[MARK], name, keys)
                out[name] = REDACTED if opened is REDACTED else opened["v"]
        return out

    async def open(self, event: RecordedEvent) -> RecordedEvent:
        """The event with its personal fields opened (or :data:`REDACTED`)."""
        return dataclasses.replace(event, data=await self.open_data(event.data))

    def opened(self, handler: Callable[..., Any]) -> Callable[..., Any]:
        """Wrap a subscription or projection handler so it receives opened events."""

        async def wrapper(event: RecordedEvent, *args: Any) -> Any:
            result = handler(await self.open(event), *args)
            # async-only: begin
            if hasattr(result, "__await__"):
                result = await result
            # async-only: end
            return result

        return wrapper

    async def open_snapshot(self, snapshot: Snapshot | None) -> Snapshot | None:
        """A snapshot with its personal fields opened, or None (dropped: rebuild from the
        events) when it holds a forgotten subject's data."""
        if snapshot is None:
            return None
        data = await self.open_data(snapshot.data)
        if any(value is REDACTED for value in data.values()):
            return None
        return dataclasses.replace(snapshot, data=data)

    async def _decrypt(
        self, sealed: dict[str, Any], field: str, keys: dict[str, bytes | None]
    ) -> Any:
        subject = str(sealed["subject"])
        if subject not in keys:
            keys[subject] = await self._key(subject, False)
        key = keys[subject]
        if key is None:
            return REDACTED
        plain = _aesgcm()(key).decrypt(
            base64.b64decode(sealed["nonce"]),
            base64.b64decode(sealed["data"]),
            f"{subject}\x00{field}".encode(),
        )
        return _codec.decode(plain)

    # -- forgetting ------------------------------------------------------------------------

    async def forget(self, subject: str) -> bool:
        """Delete the subject's key: its personal data reads as :data:`REDACTED` from now on,
        everywhere this store's data goes. Return whether a key was stored."""
        if not isinstance(subject, str) or not subject:
            raise InvalidInput(f"subject must be a non-empty str, got {subject!r}")
        self._cache.pop(subject, None)
        return await self._keys.forget(subject)


def _is_sealed(value: Any) -> bool:
    return isinstance(value, dict) and {"subject", "nonce", "data"} <= value.keys()
