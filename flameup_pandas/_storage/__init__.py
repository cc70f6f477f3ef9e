"""Storage: how sources, the sync state and the results file open what they name.

One place decides where a file lives (``location``), how whole objects are read and written
(``objects``), how a state on object storage is locked (``lease``) and how every state is
locked, journaled and folded (``keeper``).
"""

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
