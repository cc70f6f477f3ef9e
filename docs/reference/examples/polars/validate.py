import polars as pl

import flameup_pandas  # noqa: F401  (registers df.flameup on polars frames too)

df = pl.DataFrame({"userId": ["u1", "u2"], "email": ["ada@example.com", "not-an-email"]})
print(df.flameup.validate())  # a polars frame: row, column, check, value
