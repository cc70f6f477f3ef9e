import pandas as pd

import flameup_pandas  # noqa: F401  (registers df.flameup)

orders = pd.DataFrame(
    {
        "userId": ["u1", "u2"],
        "timestamp": pd.to_datetime(["2026-11-30 10:00", "2026-11-30 11:30"], utc=True),
        "amount": [42.0, 17.5],
    }
)
result = orders.flameup.track(event="purchase_completed", progress=False)
print(result["flameup_status"].tolist())
# ['sent', 'sent']
