"""The domain layer end to end, as ``evstore demo`` shows it: ``report = run(url)``.

1. Register users with the :class:`~evstore.Repository` (a new aggregate saves at
   expected version 0) and change e-mails until a save crosses the snapshot interval.
2. Two sessions change the same user: the second save raises ``ConcurrencyError``;
   ``repository.retry`` reloads and succeeds.
3. An event stored by "old code" in an older (v1) shape, and one under a renamed type,
   load into today's classes (upcaster and alias).
4. The ``UsersBySource`` projection catches up (exactly-once on SQLite).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from evstore._types import NewEvent
from evstore.domain.projection import Projection
from evstore.domain.repository import Repository
from evstore.errors import ConcurrencyError
from evstore.examples.projections import UsersBySource
from evstore.examples.users import User, registry, user_stream
from evstore.store.connect import connect

__all__ = ["Report", "run"]

SOURCES = ("web", "mobile", "referral", "partner")


@dataclass
class Report:
    """What the scenario did, for display."""

    url: str
    users: list[str] = field(default_factory=list)
    snapshot: tuple[str, int] | None = None  # (stream, version) of a snapshot taken
    conflict: str = ""  # the ConcurrencyError message
    retried_email: str = ""
    legacy_user: dict[str, object] = field(default_factory=dict)
    exactly_once: bool = False
    handled: int = 0
    counts: dict[str, tuple[int, int]] = field(default_factory=dict)


def run(url: str, *, users: int = 8, snapshot_every: int = 5) -> Report:
    """Run the scenario on the store at ``url`` (use a fresh database) and report."""
    report = Report(url)
    with connect(url) as store:
        repo = Repository(store, User, registry=registry, snapshot_every=snapshot_every)
        for i in range(users):
            user = User.register(
                user_stream(f"{i:04d}"), f"user{i}@example.com", f"First{i}", f"Last{i}",
                SOURCES[i % len(SOURCES)],
            )  # fmt: skip
            repo.save(user)
            report.users.append(user.id)

        first = repo.load(report.users[0])
        for n in range(snapshot_every):
            first.change_email(f"user0+{n}@example.com")
        repo.save(first)  # versions 1 -> 1 + snapshot_every: crosses the interval
        snapshot = store.get_snapshot(first.id)
        report.snapshot = None if snapshot is None else (snapshot.stream_id, snapshot.version)

        a, b = repo.load(report.users[1]), repo.load(report.users[1])
        a.change_email("first-writer@example.com")
        b.change_email("second-writer@example.com")
        repo.save(a)
        try:
            repo.save(b)
        except ConcurrencyError as e:
            report.conflict = str(e)
        retried = repo.retry(report.users[1], lambda u: u.change_email("retried@example.com"))
        report.retried_email = retried.email

        legacy = user_stream("legacy")
        store.append(
            legacy,
            [
                NewEvent(
                    "UserRegistered",
                    {"email": "ada@example.com", "firstName": "Ada", "lastName": "Lovelace",
                     "registrationSource": "web"},
                    schema_version=1,
                ),
                NewEvent("UserEmailChanged", {"old_email": "ada@example.com",
                                              "new_email": "ada@analytical.engine"}),
            ],
            expected_version=0,
        )  # fmt: skip
        old = repo.load(legacy)
        report.legacy_user = {
            "first_name": old.first_name,
            "last_name": old.last_name,
            "email": old.email,
            "version": old.version,
        }
        report.users.append(legacy)
        last = repo.load(report.users[-2])
        last.deactivate("demo")
        saved = repo.save(last)
        assert saved is not None

        view = UsersBySource()
        projection = Projection(
            store, "users-by-source", view, setup=view.setup, types=UsersBySource.types
        )
        report.exactly_once = projection.exactly_once
        report.handled = projection.catch_up(until=saved.last_position)
        report.counts = projection.query(view.counts)
    return report
