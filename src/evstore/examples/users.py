"""A ``User`` aggregate: registration, e-mail changes, deactivation.

Older code stored ``UserRegistered`` with camelCase fields (``firstName``,
``registrationSource``). Here that shape is schema version 1 and today's class (version 2)
uses Python names; :func:`_v1_to_v2` upcasts stored v1 events on read, so both load into
the same class. ``EmailChanged`` was once called ``UserEmailChanged``: the alias keeps
events stored under the old name readable.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from evstore.domain.aggregate import Aggregate, applies
from evstore.domain.registry import EventRegistry
from evstore.errors import InvalidInput

__all__ = [
    "EmailChanged",
    "User",
    "UserDeactivated",
    "UserRegistered",
    "registry",
    "user_stream",
]

registry = EventRegistry()
"""The registry of the example's events."""


@registry.register(version=2)
@dataclass(frozen=True)
class UserRegistered:
    """A user signed up (schema version 2; version 1 used camelCase names)."""

    email: str
    first_name: str
    last_name: str
    registration_source: str


@registry.upcaster("UserRegistered", from_version=1)
def _v1_to_v2(data: dict[str, Any]) -> dict[str, Any]:
    """v1 (the older JSON) -> v2: camelCase names become snake_case."""
    return {
        "email": data["email"],
        "first_name": data["firstName"],
        "last_name": data["lastName"],
        "registration_source": data.get("registrationSource", "unknown"),
    }


@registry.register(aliases=["UserEmailChanged"])
@dataclass(frozen=True)
class EmailChanged:
    """A user's e-mail address changed (stored as ``UserEmailChanged`` by older code)."""

    old_email: str
    new_email: str


@registry.register
@dataclass(frozen=True)
class UserDeactivated:
    """A user's account was closed."""

    reason: str


def user_stream(user_id: str | uuid.UUID | None = None) -> str:
    """The stream id of a user: ``user-<id>`` (a new random id when none is given)."""
    return f"user-{user_id or uuid.uuid4().hex}"


def _check_email(email: str) -> str:
    if not isinstance(email, str) or "@" not in email.strip("@"):
        raise InvalidInput(f"{email!r} is not an e-mail address")
    return email


@dataclass
class User(Aggregate):
    """A registered user. Commands check the rules, then ``trigger`` an event."""

    email: str = ""
    first_name: str = ""
    last_name: str = ""
    registration_source: str = ""
    active: bool = False
    email_changes: int = 0

    @classmethod
    def register(
        cls, user_id: str, email: str, first_name: str, last_name: str, source: str
    ) -> User:
        """A new user (not saved yet): the ``UserRegistered`` event is pending."""
        user = cls.create(user_id)
        user.trigger(UserRegistered(_check_email(email), first_name, last_name, source))
        return user

    def change_email(self, email: str) -> None:
        """Change the e-mail address of an active user; the same address is a no-op."""
        if not self.active:
            raise InvalidInput(f"user {self.id} is deactivated")
        if _check_email(email) != self.email:
            self.trigger(EmailChanged(self.email, email))

    def deactivate(self, reason: str) -> None:
        """Close the account (once)."""
        if self.active:
            self.trigger(UserDeactivated(reason))

    @applies(UserRegistered)
    def _registered(self, event: UserRegistered) -> None:
        self.email = event.email
        self.first_name = event.first_name
        self.last_name = event.last_name
        self.registration_source = event.registration_source
        self.active = True

    @applies(EmailChanged)
    def _email_changed(self, event: EmailChanged) -> None:
        self.email = event.new_email
        self.email_changes += 1

    @applies(UserDeactivated)
    def _deactivated(self, event: UserDeactivated) -> None:
        self.active = False
