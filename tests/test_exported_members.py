"""The public surface is exactly what __all__ says, and every name in it exists."""

from __future__ import annotations

import flameup_pandas
import flameup_pandas.exceptions
import flameup_pandas.testing


def test_all_names_exist_and_nothing_private_is_exported():
    for module in (flameup_pandas, flameup_pandas.exceptions, flameup_pandas.testing):
        for name in module.__all__:
            assert hasattr(module, name), f"{module.__name__}.{name}"
        public = {n for n in dir(module) if not n.startswith("_")}
        exported = set(module.__all__)
        modules = {n for n in public if type(getattr(module, n)).__name__ == "module"}
        assert public - exported - modules - {"annotations"} == set(), module.__name__


def test_every_exception_descends_from_flameup_error():
    for name in flameup_pandas.exceptions.__all__:
        assert issubclass(getattr(flameup_pandas.exceptions, name), flameup_pandas.FlameupError)


def test_bad_input_errors_are_value_errors():
    for cls in (
        flameup_pandas.ConfigurationError,
        flameup_pandas.MappingError,
        flameup_pandas.DuplicateIdentityError,
        flameup_pandas.NaiveTimestampError,
    ):
        assert issubclass(cls, ValueError)


def test_importing_registers_the_accessor():
    import pandas as pd

    assert hasattr(pd.DataFrame({"userId": ["a"]}), "flameup")
