"""Events: a kind of record the engine runs (rules, kind, state, send)."""
