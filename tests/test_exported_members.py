"""The public surface is exactly what __all__ says, and every name in it exists."""

from __future__ import annotations

import flameup_pandas
import flameup_pandas.airflow
import flameup_pandas.exceptions
import flameup_pandas.spark
import flameup_pandas.testing

# Modules whose every public name is exported; spark and airflow are public modules with
# helpers of their own, so for them only __all__ itself is checked.
EXACT_MODULES = (flameup_pandas, flameup_pandas.exceptions, flameup_pandas.testing)
PUBLIC_MODULES = (*EXACT_MODULES, flameup_pandas.spark, flameup_pandas.airflow)


def test_all_names_exist_and_nothing_private_is_exported():
    for module in PUBLIC_MODULES:
        for name in module.__all__:
            if name in getattr(module, "_NEEDS_AIRFLOW", ()):
                continue  # imported from Airflow on first use (.ci/airflow checks them)
            assert hasattr(module, name), f"{module.__name__}.{name}"
    for module in EXACT_MODULES:
        public = {n for n in dir(module) if not n.startswith("_")}
        exported = set(module.__all__)
        modules = {n for n in public if type(getattr(module, n)).__name__ == "module"}
        assert public - exported - modules - {"annotations"} == set(), module.__name__


def test_every_exception_descends_from_flameup_error():
    exempt = {"UpsertInterrupted", "ReadInterrupted", "FieldNameWarning"}
    for name in set(flameup_pandas.exceptions.__all__) - exempt:
        assert issubclass(getattr(flameup_pandas.exceptions, name), flameup_pandas.FlameupError)
    assert issubclass(flameup_pandas.FieldNameWarning, UserWarning)


def test_an_interrupted_run_stays_a_keyboard_interrupt_that_except_exception_cannot_catch():
    for cls in (flameup_pandas.UpsertInterrupted, flameup_pandas.ReadInterrupted):
        assert issubclass(cls, KeyboardInterrupt)
        assert not issubclass(cls, Exception)


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
