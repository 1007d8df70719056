"""Store-level options, checked once - before any backend is opened."""

from __future__ import annotations

from dataclasses import dataclass

from evstore import _validation as check
from evstore.errors import InvalidInput
from evstore.store.partitioning import Partitioning, TenantPartitioning

DEFAULT_PAGE_SIZE = 1000


@dataclass(frozen=True, slots=True)
class StoreSettings:
    """The facade's options; invalid values raise ``InvalidInput`` on construction."""

    category_separator: str = "-"
    page_size: int = DEFAULT_PAGE_SIZE
    poll_interval: float = 0.05
    partitioning: Partitioning | None = None
    tenant: str | None = None
    retention_refresh: float = 0.0
    """Seconds a store may go on with the retention metadata it read last (0: it reads the
    ``$retention`` stream before every read, so another process's change counts at once)."""

    def __post_init__(self) -> None:
        if not isinstance(self.category_separator, str) or not self.category_separator:
            raise InvalidInput("category_separator must be a non-empty str")
        check.positive_int(self.page_size, "page_size")
        interval = self.poll_interval
        if isinstance(interval, bool) or not isinstance(interval, int | float) or interval <= 0:
            raise InvalidInput(f"poll_interval must be a positive number, got {interval!r}")
        object.__setattr__(self, "poll_interval", float(interval))
        refresh = self.retention_refresh
        if isinstance(refresh, bool) or not isinstance(refresh, int | float) or not refresh >= 0:
            raise InvalidInput(f"retention_refresh must be seconds >= 0, got {refresh!r}")
        object.__setattr__(self, "retention_refresh", float(refresh))
        strategy = self.partitioning
        if strategy is not None and not isinstance(strategy, Partitioning):
            raise InvalidInput(
                "partitioning must be a strategy with partition_key() and partition_hash(), "
                f"such as TenantPartitioning(); got {strategy!r}"
            )
        if self.tenant is None:
            return
        if not isinstance(self.tenant, str):
            raise InvalidInput(
                f"tenant must be a str, got {type(self.tenant).__name__}: {self.tenant!r}"
            )
        if strategy is None:
            object.__setattr__(self, "partitioning", TenantPartitioning())
        elif not isinstance(strategy, TenantPartitioning):
            raise InvalidInput(f"tenant= needs TenantPartitioning, not {strategy!r}")
        self.tenant_prefix  # noqa: B018 - checks the name: no tenant may start like another

    @property
    def tenant_prefix(self) -> str:
        """The stream id prefix of this store's tenant ("" without a tenant)."""
        if self.tenant is None:
            return ""
        assert isinstance(self.partitioning, TenantPartitioning)
        return self.partitioning.prefix(self.tenant)
