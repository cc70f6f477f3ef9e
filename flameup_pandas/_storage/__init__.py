"""Storage: how sources, the sync state and the results file open what they name.

One place decides where a file lives and how it is read and written::

    location.py   a path or URI -> Location (local, or an object on an fsspec filesystem);
                  unknown schemes refused, never turned into local paths
    objects.py    whole-object reads and writes, retried with backoff (StoreRetry),
                  conditional create, atomic streamed output
    lease.py      the lock of a state on object storage: numbered leases taken by
                  conditional create, renewed while the run lives, breakable by hand
    keeper.py     a state's lock and journal (a local file appended, or objects flushed
                  every few batches or seconds), and its folding, for every state
"""

from .keeper import JournalObjects, run_name
from .lease import LEASE_SECONDS, Lease, LockedError, break_lock
from .location import SCHEMES, Location, StorageOptions, resolve
from .objects import Store, StoreRetry, StoreUnavailableError, atomic_output

__all__ = [
    "LEASE_SECONDS",
    "SCHEMES",
    "JournalObjects",
    "Lease",
    "Location",
    "LockedError",
    "StorageOptions",
    "Store",
    "StoreRetry",
    "StoreUnavailableError",
    "atomic_output",
    "break_lock",
    "resolve",
    "run_name",
]
