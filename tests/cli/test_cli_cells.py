"""CSV cells converted to the types a datasource's attribute specs declare (``cli/_cells.py``)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from instasent_async.cli._cells import FALSE_WORDS, TRUE_WORDS, converters
from instasent_async.models.specs import AttributeSpec


def spec(uid: str, data_type: str | None = "string", multivalue: int | None = 1) -> AttributeSpec:
    return AttributeSpec(uid=uid, data_type=data_type, multivalue=multivalue)


def test_only_columns_that_need_it_get_a_converter() -> None:
    found = converters(
        [
            spec("age", "number"),
            spec("Score", "DECIMAL"),
            spec("vip", "bool"),
            spec("langs", "string", 3),
            spec("plan", "string"),
            spec("born", "date"),
            spec("blob", "payload"),
            spec("_client_tags", "string", 20),
            spec(None, "number"),  # type: ignore[arg-type]
        ],
        skip={"_client_tags"},
    )
    assert set(found) == {"age", "Score", "vip", "langs"}


@pytest.mark.parametrize(
    ("cell", "value"),
    [("33", 33), (" -7 ", -7), ("+4", 4), ("4.5", 4.5), ("1e3", 1000.0), ("007", 7)],
)
def test_numbers(cell: str, value: float) -> None:
    result = converters([spec("n", "integer")])["n"](cell)
    assert result == value and type(result) is type(value)


@pytest.mark.parametrize("cell", ["abc", "nan", "inf", "1,5", ""])
def test_a_cell_that_is_not_a_number_says_what_was_declared_and_the_way_out(cell: str) -> None:
    with pytest.raises(ValueError, match="expected a number") as info:
        converters([spec("n", "number")])["n"](cell)
    message = str(info.value)
    assert message.startswith(f"expected a number, got {cell!r}")
    assert "the datasource declares it number" in message and "--csv-strings" in message


def test_booleans_follow_the_api_convention_of_1_and_0() -> None:
    convert = converters([spec("vip", "boolean")])["vip"]
    assert {convert(word.upper()) for word in TRUE_WORDS} == {"1"}
    assert {convert(word) for word in FALSE_WORDS} == {"0"}
    with pytest.raises(ValueError, match="expected a boolean"):
        convert("maybe")


def test_multi_value_cells_become_lists_of_converted_values() -> None:
    found = converters([spec("langs", "string", 3), spec("scores", "number", 5)])
    assert found["langs"]("es") == ["es"]
    assert found["langs"]('["es", "en"]') == ["es", "en"]
    assert found["scores"]('["1", 2.5]') == [1, 2.5]
    assert found["scores"]("4") == [4]
    with pytest.raises(ValueError, match="expected a JSON array"):
        found["langs"]("[es")
    with pytest.raises(ValueError, match="multi-value"):
        found["scores"]('["x"]')


@given(st.integers(-(10**15), 10**15))
def test_any_integer_cell_round_trips(value: int) -> None:
    assert converters([spec("n", "int")])["n"](str(value)) == value
