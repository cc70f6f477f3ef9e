"""Storage: how sources, the sync state and the results file open what they name."""

from .keeper import JournalObjects
from .lease import LEASE_SECONDS, Lease, LockedError, break_lock
from .location import Location, StorageOptions, resolve
from .objects import Store, StoreRetry, atomic_output

__all__ = [
    "LEASE_SECONDS",
    "JournalObjects",
    "Lease",
    "Location",
    "LockedError",
    "StorageOptions",
    "Store",
    "StoreRetry",
    "atomic_output",
    "break_lock",
    "resolve",
]
