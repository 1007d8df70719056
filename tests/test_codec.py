"""The JSON codec: every supported value round-trips to the same Python value."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from evstore import _codec
from evstore.errors import SerializationError

# Time zones are stored as their UTC offset: a zoneinfo datetime comes back with a fixed
# offset (same instant, same utcoffset), so the property is stated for fixed offsets.
offsets = st.integers(-23 * 60, 23 * 60).map(lambda m: timezone(timedelta(minutes=m)))
scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
    | st.datetimes(timezones=st.none() | offsets)
    | st.dates()
    | st.times()
    | st.uuids()
    | st.decimals(allow_nan=False, allow_infinity=False)
    | st.binary()
)
keys = st.text().filter(lambda k: not k.startswith("__evstore__:"))
documents = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(keys, documents, max_size=6))
def test_round_trip(value: dict[str, Any]) -> None:
    decoded = _codec.decode(_codec.encode(value))
    assert decoded == value
    assert _types(decoded) == _types(value)


def _types(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _types(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_types(v) for v in value]
    return type(value)


def test_decimal_keeps_precision_and_exponent() -> None:
    value = {"d": Decimal("1.10"), "e": Decimal("1E+3")}
    assert str(_codec.decode(_codec.encode(value))["d"]) == "1.10"
    assert str(_codec.decode(_codec.encode(value))["e"]) == "1E+3"


def test_errors_name_the_field() -> None:
    with pytest.raises(SerializationError, match=r"data\.a\[1\]\.b"):
        _codec.encode({"a": [1, {"b": object()}]})


def test_corrupt_json_is_a_serialization_error() -> None:
    with pytest.raises(SerializationError):
        _codec.decode(b"{not json")
    with pytest.raises(SerializationError):
        _codec.decode(b"[1, 2]")


def test_named_time_zone_keeps_instant_and_offset() -> None:
    value = datetime(2025, 7, 1, 12, 30, tzinfo=ZoneInfo("Europe/Paris"))
    back = _codec.decode(_codec.encode({"t": value}))["t"]
    assert back == value
    assert back.utcoffset() == value.utcoffset() == timedelta(hours=2)
