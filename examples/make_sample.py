"""Regenerate examples/customers.parquet: 2,000 realistic customers, a few deliberately bad.

python examples/make_sample.py

The table is ``flameup_pandas.testing.sample_customers()``, so an installed wheel has it too.
"""

from __future__ import annotations

from pathlib import Path

from flameup_pandas.testing import write_sample_customers

if __name__ == "__main__":
    print(f"wrote {write_sample_customers(Path(__file__).with_name('customers.parquet'))}")
