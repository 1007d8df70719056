"""ErrorMap: a backend's one table from driver exceptions to evstore errors."""

from __future__ import annotations

import asyncio

import pytest

from evstore.errors import BackendUnavailable, InvalidInput, StreamNotFound
from evstore.spi import ErrorMap


class DriverError(Exception):
    pass


class Busy(DriverError):
    pass


class TooLarge(Busy):
    pass


TABLE = ErrorMap(
    {
        TooLarge: lambda e: InvalidInput(f"too large: {e}"),
        DriverError: lambda e: BackendUnavailable(f"driver: {e}"),
        Busy: lambda e: None if "mine" in str(e) else BackendUnavailable(f"busy: {e}"),
    }
)


def test_the_most_specific_entry_wins_whatever_the_order() -> None:
    with pytest.raises(InvalidInput, match="too large: x") as raised, TABLE:
        raise TooLarge("x")
    assert isinstance(raised.value.__cause__, TooLarge)
    with pytest.raises(BackendUnavailable, match="busy: y"), TABLE:
        raise Busy("y")
    with pytest.raises(BackendUnavailable, match="driver: z"), TABLE:
        raise DriverError("z")


def test_unmapped_declined_and_evstore_errors_pass_through_unchanged() -> None:
    for error in (KeyError("k"), Busy("mine"), StreamNotFound("s")):
        with pytest.raises(type(error)) as raised, TABLE:
            raise error
        assert raised.value is error
    assert TABLE.translate(KeyError("k")).__class__ is KeyError
    with TABLE:
        pass  # nothing raised, nothing done


def test_it_serves_async_with_around_awaits() -> None:
    async def main() -> None:
        async with TABLE:
            await asyncio.sleep(0)
            raise DriverError("late")

    with pytest.raises(BackendUnavailable, match="driver: late"):
        asyncio.run(main())
