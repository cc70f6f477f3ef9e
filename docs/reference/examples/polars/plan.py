import polars as pl

import flameup_pandas  # noqa: F401  (registers df.flameup on polars frames too)

df = pl.DataFrame({"userId": ["u1", "u1", "u2"], "email": ["a@x.io", "a@x.io", "no"]})
print(df.flameup.plan()["flameup_action"].to_list())  # no state: all to send are updates
# ['skipped', 'update', 'invalid']
