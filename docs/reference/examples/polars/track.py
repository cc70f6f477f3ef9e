from datetime import UTC, datetime

import polars as pl

import flameup_pandas  # noqa: F401  (registers df.flameup on polars frames too)

orders = pl.DataFrame({"userId": ["u1"], "timestamp": [datetime(2026, 11, 30, 10, tzinfo=UTC)]})
result = orders.flameup.track(event="purchase_completed", progress=False)
print(result["flameup_status"].to_list())
# ['sent']
