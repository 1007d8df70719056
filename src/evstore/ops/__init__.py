"""Operating a store: export, import, copy between backends, verify, scavenge.

Each is a function over open stores (sync here; the asyncio twins are in
``evstore.ops.transfer_async`` and ``evstore.ops.verify_async``) and an ``evstore`` command.
They use the backend interface (:mod:`evstore.spi`) for what the public API does not show:
``recorded_at``, delete states, the list of checkpoints, dead letters.
"""

from evstore.ops.retention import ScavengeReport, scavenge
from evstore.ops.transfer import TransferReport, copy_store, export_store, import_store
from evstore.ops.verify import (
    Problem,
    SubscriptionInfo,
    VerifyReport,
    discard_parked,
    parked_events,
    reset_checkpoint,
    subscriptions,
    verify_store,
)

__all__ = [
    "Problem",
    "ScavengeReport",
    "SubscriptionInfo",
    "TransferReport",
    "VerifyReport",
    "copy_store",
    "discard_parked",
    "export_store",
    "import_store",
    "parked_events",
    "reset_checkpoint",
    "scavenge",
    "subscriptions",
    "verify_store",
]
