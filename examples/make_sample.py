"""Regenerate examples/customers.parquet: 2,000 realistic customers, a few deliberately bad.

python examples/make_sample.py
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

FIRST = ["Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Frances", "Ken", "Radia", "Linus"]
LAST = ["Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Knuth", "Allen", "Thompson"]
ZONES = ["Europe/Berlin", "America/New_York", "Asia/Tokyo", "Europe/London", "UTC"]
LOCALES = ["en-US", "de-DE", "ja-JP", "en-GB", "fr-FR"]


def customers(n: int = 2000, seed: int = 42) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    ids = np.arange(1, n + 1)
    first = rng.choice(FIRST, n)
    last = rng.choice(LAST, n)
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
    df.loc[17, "email"] = "ada.lovelace@@example"  # a broken email
    df.loc[256, ["user_id", "email"]] = [None, None]  # no identity at all
    df.loc[1024, "user_id"] = df.loc[1023, "user_id"]  # a duplicate userId
    df.loc[1500, "timezone"] = "Mars/Olympus_Mons"  # not an IANA zone
    return df


if __name__ == "__main__":
    out = Path(__file__).with_name("customers.parquet")
    customers().to_parquet(out, index=False)
    print(f"wrote {out}")
