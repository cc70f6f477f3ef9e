import polars as pl

import flameup_pandas  # noqa: F401  (registers df.flameup on polars frames too)

df = pl.DataFrame({"userId": ["u1"], "plan": ["pro"], "seats": [3]})
print(df.flameup.to_people())
# [{'userId': 'u1', 'traits': {'plan': 'pro', 'seats': 3}}]
