"""flameup-pandas: upsert pandas DataFrames and parquet files into Flameup's people API."""

from __future__ import annotations

__version__ = "0.1.0"
