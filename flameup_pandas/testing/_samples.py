"""The sample customers of the quickstart: 2,000 realistic rows, four deliberately bad.

The same table as ``examples/customers.parquet`` in the repository, made here so that an
installed wheel has it too::

    >>> from flameup_pandas.testing import sample_customers
    >>> df = sample_customers()
    >>> len(df), list(df.columns[:3])
    (2000, ['user_id', 'email', 'first_name'])
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd

__all__ = ["sample_customers", "write_sample_customers"]

FIRST = ["Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Frances", "Ken", "Radia", "Linus"]
LAST = ["Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Knuth", "Allen", "Thompson"]
ZONES = ["Europe/Berlin", "America/New_York", "Asia/Tokyo", "Europe/London", "UTC"]
LOCALES = ["en-US", "de-DE", "ja-JP", "en-GB", "fr-FR"]


def sample_customers(n: int = 2000, seed: int = 42) -> pd.DataFrame:
    """``n`` customers (ids, emails, names, time zone, locale, plan, lifetime value, sign-up
    time), the same for the same ``seed``. Four rows are bad on purpose, as real data is
    (with more than 1,500 rows): row 17 has a broken email, row 256 no identity, row 1024
    repeats row 1023's ``user_id`` and row 1500 names a time zone that does not exist."""
    rng = np.random.default_rng(seed)
    ids = np.arange(1, n + 1)
    first, last = rng.choice(FIRST, n), rng.choice(LAST, n)
    df = pd.DataFrame(
        {
            "user_id": [f"cust-{i:06d}" for i in ids],
            "email": [
                f"{f.lower()}.{s.lower()}{i}@example.com"
                for f, s, i in zip(first, last, ids, strict=True)
            ],
            "first_name": first,
            "last_name": last,
            "timezone": rng.choice(ZONES, n),
            "locale": rng.choice(LOCALES, n),
            "plan": rng.choice(["free", "pro", "enterprise"], n, p=[0.6, 0.3, 0.1]),
            "lifetime_value": np.round(rng.gamma(2.0, 150.0, n), 2),
            "signed_up_at": pd.Timestamp("2024-01-01", tz="UTC")
            + pd.to_timedelta(rng.integers(0, 700 * 86400, n), unit="s"),
        }
    )
    if n > 1500:
        df.loc[17, "email"] = "ada.lovelace@@example"
        df.loc[256, ["user_id", "email"]] = [None, None]
        df.at[1024, "user_id"] = "cust-001024"  # the user_id of row 1023
        df.loc[1500, "timezone"] = "Mars/Olympus_Mons"
    return df


def write_sample_customers(path: str | os.PathLike[str] = "customers.parquet") -> str:
    """Write :func:`sample_customers` to a parquet file (no index); return its path."""
    sample_customers().to_parquet(path, index=False)
    return os.fspath(path)
