"""The operators' commands: export, import, copy, verify, subscriptions, rebuild.

    evstore export FILE             the store as JSON Lines (.gz / .zst: compressed)
    evstore import FILE             load an export (run again to resume)
    evstore copy SRC_URL DST_URL    any backend to any backend (run again to resume)
    evstore verify                  check the store's integrity; exit 1 on any problem
    evstore subscriptions           named checkpoints: position, lag, parked events
                                    (parked, discard, replay: the parked events)
    evstore rebuild MODULE:FACTORY  reset a projection's checkpoint and run it again
    evstore forget SUBJECT          crypto-shred a data subject's personal data
    evstore retention [STREAM]      show or set retention metadata (--max-age, ...)
    evstore scavenge                remove expired events for good; report what was freed

Stored data (stream ids, checkpoint names, errors) is printed verbatim, never as markup.
Errors go to stderr with exit status 1; an interrupted run exits 130 and resumes when run
again. A progress bar (rate, ETA) is drawn on stderr when it is a terminal.
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Callable, Iterator
from typing import Any, NoReturn

import click
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeRemainingColumn,
)

import evstore
from evstore import ops
from evstore.cli._open import opened, url_option

_stderr = Console(stderr=True)


def _fail(message: str, code: int = 1) -> NoReturn:
    click.echo(message, err=True)
    raise SystemExit(code)


@contextlib.contextmanager
def _guard() -> Iterator[None]:
    """evstore errors: one line on stderr, exit 1; Ctrl-C: exit 130."""
    try:
        yield
    except evstore.EvstoreError as e:
        _fail(f"{type(e).__name__}: {e}")
    except KeyboardInterrupt:
        _fail("interrupted", 130)


@contextlib.contextmanager
def _progress(what: str) -> Iterator[Callable[[int, int | None], None]]:
    """A progress callback drawing a bar with rate and ETA on a terminal (else nothing)."""
    bar = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[rate]}", markup=False),
        TimeRemainingColumn(),
        console=_stderr,
        disable=not _stderr.is_terminal,
        transient=True,
    )
    task = bar.add_task(what, total=None, rate="")

    def update(done: int, total: int | None) -> None:
        speed = bar.tasks[0].speed
        bar.update(
            task,
            completed=done,
            total=total,
            rate=f"{speed:,.0f} events/s" if speed else "",
        )

    with bar:
        try:
            yield update
        except KeyboardInterrupt:
            click.echo("interrupted: run the same command again to resume", err=True)
            raise  # exit status 130


def _report(report: ops.TransferReport, verb: str) -> None:
    for note in report.notes:
        click.echo(f"note: {note}", err=True)
    for problem in report.problems:
        click.echo(f"not carried: {problem}", err=True)
    click.echo(f"{verb}: {report.summary()}")
    if report.problems:
        raise SystemExit(1)


@click.command("export")
@url_option
@click.argument("file", type=click.Path(dir_okay=False))
@click.option(
    "--compression",
    type=click.Choice(["none", "gzip", "zstd"]),
    default=None,
    help="Default: from the file name (.gz: gzip, .zst: zstd), else none.",
)
def export_command(url: str | None, file: str, compression: str | None) -> None:
    """Write the whole store to FILE as JSON Lines (events, streams, snapshots, checkpoints,
    dead letters)."""
    with _guard(), opened(url) as store, _progress("export") as progress:
        report = ops.export_store(
            store, file, compression=compression, source=url or "", progress=progress
        )
    _report(report, "exported")


@click.command("import")
@url_option
@click.argument("file", type=click.Path(dir_okay=False))
def import_command(url: str | None, file: str) -> None:
    """Load an export FILE into an empty store (run again to resume an interrupted import)."""
    with _guard(), opened(url, existing=False) as store, _progress("import") as progress:
        report = ops.import_store(store, file, progress=progress)
    _report(report, "imported")


@click.command("copy")
@click.argument("source_url")
@click.argument("destination_url")
@click.option(
    "--settle",
    default=1000,
    show_default=True,
    help="Catch up until a pass carries fewer events than this (the final sync).",
)
@click.option("--max-rounds", default=10, show_default=True, help="At most this many passes.")
def copy_command(source_url: str, destination_url: str, settle: int, max_rounds: int) -> None:
    """Copy a store to another backend, translating checkpoints (run again to resume, or
    after stopping the source's writers, for the final sync)."""
    with (
        _guard(),
        opened(source_url) as source,
        opened(destination_url, existing=False) as destination,
        _progress("copy") as progress,
    ):
        report = ops.copy_store(
            source, destination, progress=progress, settle=settle, max_rounds=max_rounds
        )
    _report(report, "copied")
    for name, (before, after) in report.checkpoints.items():
        click.echo(f"checkpoint {name}: {before} -> {after}")


@click.command("verify")
@url_option
@click.option("--max-problems", default=1000, show_default=True, help="Problems listed.")
def verify_command(url: str | None, max_problems: int) -> None:
    """Check versions, positions, decoding, snapshots and checkpoints; exit 1 on a problem."""
    with _guard(), opened(url) as store, _progress("verify") as progress:
        report = ops.verify_store(store, progress=progress, max_problems=max_problems)
    for problem in report.problems:
        click.echo(str(problem))
    if report.problem_count > len(report.problems):
        click.echo(f"... and {report.problem_count - len(report.problems)} more")
    click.echo(report.summary())
    if not report.ok:
        raise SystemExit(1)


@click.group("subscriptions", invoke_without_command=True)
@url_option
@click.pass_context
def subscriptions_command(ctx: click.Context, url: str | None) -> None:
    """Named subscriptions and projections: position, lag in events, parked events."""
    ctx.obj = url
    if ctx.invoked_subcommand is not None:
        return
    with _guard(), opened(url) as store:
        listed = ops.subscriptions(store)
    click.echo("name\tposition\tlag\tparked")
    for s in listed:
        lag = f">={s.lag}" if s.lag_capped else str(s.lag)
        click.echo(f"{s.name}\t{s.position}\t{lag}\t{s.parked}")


_PARTITION = click.option(
    "--partition",
    type=click.IntRange(min=0),
    default=None,
    help="In a store of several log partitions: only this one (positions are per partition).",
)


@subscriptions_command.command("parked")
@click.argument("name")
@_PARTITION
@click.pass_obj
def parked_command(url: str | None, name: str, partition: int | None) -> None:
    """List the events projection NAME parked (dead letters)."""
    with _guard(), opened(url) as store:
        several = store.partitions > 1
        click.echo(
            ("partition\t" if several else "") + "position\tstream\tversion\ttype\tattempts\terror"
        )
        chosen = [partition] if partition is not None else list(range(store.partitions))
        for j in chosen:
            after = 0
            where = j if several or partition is not None else None
            while letters := ops.parked_events(
                store, name, after=after, limit=500, partition=where
            ):
                for d in letters:
                    error = d.error.replace("\n", " ")
                    row = (d.position, d.stream_id, d.version, d.type, d.attempts, error)
                    click.echo("\t".join(map(str, (j, *row) if several else row)))
                after = letters[-1].position


@subscriptions_command.command("discard")
@click.argument("name")
@click.argument("position", type=int)
@_PARTITION
@click.pass_obj
def discard_command(url: str | None, name: str, position: int, partition: int | None) -> None:
    """Drop the parked event at POSITION of projection NAME."""
    with _guard(), opened(url) as store:
        if not ops.discard_parked(store, name, position, partition=partition):
            _fail(f"no parked event at position {position} for {name}")
    click.echo(f"discarded {name}@{position}")


@subscriptions_command.command("replay")
@click.argument("factory")
@click.option("--position", type=int, default=None, help="Only the event parked there.")
@click.pass_obj
def replay_command(url: str | None, factory: str, position: int | None) -> None:
    """Hand the parked events of a projection to its handler again: FACTORY is
    ``module:function`` (as for rebuild). A handled event leaves the list; one that fails
    again stays with its new error."""
    make = _factory(factory)
    with _guard(), opened(url) as store:
        projection = _projection(make(store), factory)
        handled = projection.replay(position)
        left = len(projection.dead_letters(limit=10_000))
    click.echo(f"replayed {handled} parked events of {projection.name}; {left} still parked")
    if left and position is None:
        raise SystemExit(1)


@subscriptions_command.command("reset")
@click.argument("name")
@click.option("--to", "position", default=0, show_default=True, help="The new position.")
@click.pass_obj
def reset_command(url: str | None, name: str, position: int) -> None:
    """Move checkpoint NAME (stop its subscription first; it replays what follows)."""
    with _guard(), opened(url) as store:
        before = ops.reset_checkpoint(store, name, position)
    click.echo(f"checkpoint {name}: {before} -> {position}")


def _factory(factory: str) -> Any:
    module_name, _, attribute = factory.partition(":")
    try:
        return getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError, ValueError) as e:
        _fail(f"cannot load {factory!r}: {e} (expected module:function)")


def _projection(made: object, factory: str) -> evstore.Projection:
    if not isinstance(made, evstore.Projection):
        _fail(f"{factory} returned {type(made).__name__}, not a Projection")
    return made


@click.command("rebuild")
@url_option
@click.argument("factory")
def rebuild_command(url: str | None, factory: str) -> None:
    """Rebuild a projection from the start: FACTORY is ``module:function``, called with the
    store, returning the (stopped) Projection; its read model is reset by the function."""
    make = _factory(factory)
    with _guard(), opened(url) as store:
        projection = _projection(make(store), factory)
        ops.reset_checkpoint(store, store.checkpoint_name(projection.name), 0)
        with _progress("rebuild"):
            handled = projection.catch_up()
    click.echo(f"rebuilt {projection.name}: {handled} events handled")


@click.command("forget")
@url_option
@click.argument("subject")
def forget_command(url: str | None, subject: str) -> None:
    """Forget a data subject: delete its key, so its personal fields read as REDACTED."""
    from evstore.domain.privacy import PersonalData

    with _guard(), opened(url) as store:
        had = PersonalData(store).forget(subject)
    click.echo(f"forgot {subject}" if had else f"{subject} had no key (now none can be made)")


@click.command("retention")
@url_option
@click.argument("stream", required=False)
@click.option("--category", help="Set the default of a category instead of one stream.")
@click.option("--max-age", type=float, help="Seconds: older events are expired.")
@click.option("--max-count", type=int, help="Keep only the newest N events.")
@click.option("--truncate-before", type=int, help="Versions below this are expired.")
@click.option("--protected", is_flag=True, help="Never deletable, for good.")
@click.option("--clear", is_flag=True, help="Remove the target's limits.")
def retention_command(
    url: str | None,
    stream: str | None,
    category: str | None,
    max_age: float | None,
    max_count: int | None,
    truncate_before: int | None,
    protected: bool,
    clear: bool,
) -> None:
    """Show every retention metadata (no option), or set that of STREAM or --category."""
    limits = max_age is not None or max_count is not None or truncate_before is not None
    with _guard(), opened(url) as store:
        if limits or protected or clear:
            if clear and (limits or protected):
                _fail("--clear takes no limit", 2)
            store.set_retention(
                stream,
                category=category,
                max_age=max_age,
                max_count=max_count,
                truncate_before=truncate_before,
                protected=protected,
            )
        elif stream is not None or category is not None:
            policy = store.retention(stream, category=category)
            click.echo(_policy_line("stream" if stream else "category", stream or category, policy))
            return
        policies = store.retention_policies()
    click.echo("target\tid\tmax_age\tmax_count\ttruncate_before\tprotected")
    for (kind, target), policy in policies.items():
        click.echo(_policy_line(kind, target, policy))


def _policy_line(kind: str, target: object, policy: evstore.RetentionPolicy) -> str:
    age = "" if policy.max_age is None else f"{policy.max_age.total_seconds():g}"
    count = "" if policy.max_count is None else str(policy.max_count)
    cut = "" if policy.truncate_before is None else str(policy.truncate_before)
    return f"{kind}\t{target}\t{age}\t{count}\t{cut}\t{'yes' if policy.protected else ''}"


@click.command("scavenge")
@url_option
@click.option("--dry-run", is_flag=True, help="Count what would be removed; remove nothing.")
def scavenge_command(url: str | None, dry_run: bool) -> None:
    """Remove expired events for good (safe beside writers and subscribers)."""
    with _guard(), opened(url) as store, _progress("scavenge") as progress:
        report = ops.scavenge(store, dry_run=dry_run, progress=progress)
    click.echo(report.summary())


COMMANDS = [
    export_command,
    import_command,
    copy_command,
    verify_command,
    subscriptions_command,
    rebuild_command,
    forget_command,
    retention_command,
    scavenge_command,
]
