import pandas as pd

import flameup_pandas  # noqa: F401  (registers df.flameup)

orders = pd.DataFrame(
    {
        "userId": ["u1", None],
        "timestamp": pd.to_datetime(["2026-11-30 10:00", "2026-11-30 11:30"], utc=True),
    }
)
report = orders.flameup.validate_events(event="purchase_completed")  # sends nothing
print(report[["index", "check"]])
