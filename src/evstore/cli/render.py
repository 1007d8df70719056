"""How the command line shows events: shared by the commands and the demo."""

from __future__ import annotations

import json
from typing import Any

from rich.table import Table

import evstore


def to_json(value: Any) -> str:
    """A value as one line of JSON (non-JSON values by their str)."""
    return json.dumps(value, default=str, ensure_ascii=False)


def events_table(events: list[evstore.RecordedEvent], title: str) -> Table:
    """A rich table of events (version, position, type, data)."""
    table = Table(title=title, title_justify="left")
    for column in ("stream", "version", "position", "type", "data"):
        table.add_column(column, overflow="fold")
    for e in events:
        table.add_row(e.stream_id, str(e.version), str(e.position), e.type, to_json(e.data))
    return table
