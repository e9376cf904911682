"""Coercion of string / loosely typed config values to the declared StudyConfig field types."""
from __future__ import annotations

import dataclasses
import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Optional, Union

import pytest

from functions.engine.coerce import CoercionError, coerce_fields, coerce_value, describe, field_types
from functions.engine.config import StudyConfig


def one(field, value):
    """Coerce one StudyConfig field."""
    return coerce_fields(StudyConfig, {field: value})[field]


def rejects(field, value):
    """Assert the value is rejected with an error naming the field and the value."""
    with pytest.raises(CoercionError) as info:
        one(field, value)
    err = info.value
    assert isinstance(err, ValueError)
    assert err.field == field and err.value is value
    assert str(err).startswith(f"{field}: expected ")
    assert repr(value) in str(err)
    return err


# ----------------------------------------------------------------- every real field
def _defaults():
    out = {}
    for f in dataclasses.fields(StudyConfig):
        if f.default is not dataclasses.MISSING:
            out[f.name] = f.default
        elif f.default_factory is not dataclasses.MISSING:
            out[f.name] = f.default_factory()
    return out


def test_every_field_annotation_is_understood():
    hints = field_types(StudyConfig)
    assert set(hints) == {f.name for f in dataclasses.fields(StudyConfig)}
    for name, annotation in hints.items():
        assert "~" not in describe(annotation) and "typing" not in describe(annotation), (name, annotation)


@pytest.mark.parametrize("name,default", sorted(_defaults().items()))
def test_defaults_survive_as_values_and_as_papermill_strings(name, default):
    assert one(name, default) == default
    text = default if isinstance(default, str) else json.dumps(default)
    coerced = one(name, text)
    assert coerced == default and type(coerced) is type(default)


# ----------------------------------------------------------------- bool
@pytest.mark.parametrize("text", ["false", "False", "FALSE", " no ", "0", 0, False])
def test_bool_false_words(text):
    assert one("freeze", text) is False


@pytest.mark.parametrize("text", ["true", "True", "YES", "1", 1, True])
def test_bool_true_words(text):
    assert one("freeze", text) is True


@pytest.mark.parametrize("bad", ["maybe", "", "none", 2, -1, 0.5, None, [True]])
def test_bool_rejects(bad):
    err = rejects("freeze", bad)
    assert err.expected == "bool (true/false)"


def test_bool_message():
    with pytest.raises(CoercionError, match=r"^freeze: expected bool \(true/false\), got 'maybe'$"):
        one("freeze", "maybe")


def test_optional_bool_download():
    assert one("download", "no") is False
    assert one("download", "yes") is True
    assert one("download", "null") is None
    assert one("download", None) is None
    rejects("download", "sometimes")


# ----------------------------------------------------------------- int
@pytest.mark.parametrize("value,expected", [("8", 8), (" 42 ", 42), (7, 7), (3.0, 3), ("3.0", 3), ("1e3", 1000)])
def test_int_accepts(value, expected):
    coerced = one("seed", value)
    assert coerced == expected and type(coerced) is int


@pytest.mark.parametrize("bad", ["abc", 1.5, "1.5", True, False, "true", None, "", "inf", float("nan"), [1]])
def test_int_rejects(bad):
    err = rejects("seed", bad)
    assert err.expected == "int"


def test_optional_int_limits():
    assert one("train_limit", None) is None
    assert one("train_limit", "none") is None
    assert one("train_limit", "1500") == 1500
    rejects("train_limit", "lots")
    rejects("train_limit", 2.5)


# ----------------------------------------------------------------- float
@pytest.mark.parametrize("value,expected", [("0.1", 0.1), (0.1, 0.1), (1, 1.0), ("1e-3", 1e-3)])
def test_float_accepts(value, expected):
    coerced = one("val_split", value)
    assert coerced == expected and type(coerced) is float


@pytest.mark.parametrize("bad", ["inf", "-inf", "nan", float("inf"), math.nan, "1e400", True, "abc", None, ""])
def test_float_rejects_non_finite_and_junk(bad):
    err = rejects("lr_fine_tune", bad)
    assert err.expected == "finite float"


def test_every_float_field_rejects_inf():
    for name, annotation in field_types(StudyConfig).items():
        if "float" in describe(annotation):
            with pytest.raises(CoercionError, match=f"^{name}: "):
                one(name, "inf")


# ----------------------------------------------------------------- str
def test_str_fields():
    assert one("device", "cuda") == "cuda"
    assert one("device", "none") == "none"  # None is not allowed here: the string stays
    assert one("results_dir", Path("out")) == "out"
    rejects("device", 0)
    rejects("device", None)


def test_optional_str_data_root():
    assert one("data_root", "null") is None
    assert one("data_root", "") is None
    assert one("data_root", "/tmp/data") == "/tmp/data"
    assert one("data_root", Path("/tmp/data")) == "/tmp/data"


# ----------------------------------------------------------------- lists
@pytest.mark.parametrize("value,expected", [
    ("[0.05]", [0.05]), ("[0.05, 0.1]", [0.05, 0.1]), ("0.05,0.1", [0.05, 0.1]), ("0.05, 0.1", [0.05, 0.1]),
    ("(0.05, 0.1)", [0.05, 0.1]), ("[0.05, '0.1']", [0.05, 0.1]), ('["0.05"]', [0.05]),
    (0.5, [0.5]), ("0.5", [0.5]), (1, [1.0]), ((0.1, 0.2), [0.1, 0.2]), ([], []), ("[]", []),
])
def test_float_list(value, expected):
    coerced = one("percentages", value)
    assert coerced == expected and type(coerced) is list
    assert all(type(x) is float for x in coerced)


@pytest.mark.parametrize("bad", ["[0.05, x]", "[0.05", "abc", None, "null", "", "[inf]", [0.1, "x"],
                                 {"a": 1}, {0.1}, [[0.1]], [True]])
def test_float_list_rejects(bad):
    err = rejects("percentages", bad)
    assert err.expected == "list[float]"


def test_int_list():
    assert one("pre_train_classes", "[0, 1, 2]") == [0, 1, 2]
    assert one("pre_train_classes", "0,1,2") == [0, 1, 2]
    assert one("pre_train_classes", (3, 4.0)) == [3, 4]
    rejects("pre_train_classes", "[0, 1.5]")
    rejects("pre_train_classes", [0, True])


def test_optional_int_list_cuts():
    assert one("cuts", "null") is None
    assert one("cuts", "None") is None
    assert one("cuts", None) is None
    assert one("cuts", "[0, 2]") == [0, 2]
    assert one("cuts", "3") == [3]
    assert one("cuts", 3) == [3]
    err = rejects("cuts", "[a]")
    assert err.expected == "list[int] or None"


# ----------------------------------------------------------------- int | list[int]
@pytest.mark.parametrize("value,expected", [
    ("8", 8), (8, 8), (8.0, 8), ("[8, 4]", [8, 4]), ("8,4", [8, 4]), ([8, "4"], [8, 4]), ((8,), [8]),
    ("[8]", [8]),
])
def test_repeats_int_or_list(value, expected):
    coerced = one("repeats", value)
    assert coerced == expected and type(coerced) is type(expected)


@pytest.mark.parametrize("bad", ["abc", 1.5, True, None, "[8, x]", "[1.5]"])
def test_repeats_rejects(bad):
    err = rejects("repeats", bad)
    assert err.expected == "int or list[int]"


# ----------------------------------------------------------------- coerce_fields / coerce_value
def test_coerce_fields_passes_unknown_keys_and_copies():
    given = {"freeze": "false", "nonsense": "false", "lr": "x"}
    out = coerce_fields(StudyConfig, given)
    assert out == {"freeze": False, "nonsense": "false", "lr": "x"}
    assert given["freeze"] == "false"  # input untouched


def test_papermill_style_parameters_build_the_intended_config():
    params = {"freeze": "false", "reinit": "false", "percentages": "[0.05, 0.2]", "repeats": "2",
              "val_split": "0.1", "seed": "3", "cuts": "null", "download": "no", "train_limit": None}
    cfg = StudyConfig(**coerce_fields(StudyConfig, params))
    assert cfg.condition == "U"
    assert cfg.percentages == [0.05, 0.2] and cfg.repeats == 2 and cfg.seed == 3
    assert cfg.val_split == 0.1 and cfg.cuts is None and cfg.download is False and cfg.train_limit is None


def test_coerce_value_generic_annotations():
    assert coerce_value("x", "1", Optional[int]) == 1
    assert coerce_value("x", "none", Union[float, None]) is None
    assert coerce_value("x", "a,b", list[str]) == ["a", "b"]
    assert coerce_value("x", "[[1, 2], [3]]", list[list[int]]) == [[1, 2], [3]]
    assert coerce_value("x", "2.5", float | list[float]) == 2.5
    assert coerce_value("x", "[2.5]", float | list[float]) == [2.5]
    assert coerce_value("x", "1", int | str) == 1
    assert coerce_value("x", "abc", int | str) == "abc"
    with pytest.raises(CoercionError, match=r"^x: expected int or None, got 'none!'$"):
        coerce_value("x", "none!", int | None)


def test_unsupported_annotations_pass_through():
    marker = object()
    assert coerce_value("x", marker, dict[str, int]) is marker
    assert coerce_value("x", "1", tuple[int, int]) == "1"


def test_field_types_requires_dataclass():
    with pytest.raises(TypeError):
        field_types(int)


def test_module_stays_light():
    """coerce.py alone (loaded by path, bypassing the package __init__) imports no torch/numpy/pandas."""
    path = Path(__file__).resolve().parents[1] / "functions" / "engine" / "coerce.py"
    code = ("import importlib.util, sys; "
            f"spec = importlib.util.spec_from_file_location('coerce_alone', {str(path)!r}); "
            "spec.loader.exec_module(importlib.util.module_from_spec(spec)); "
            "bad = [m for m in ('torch', 'numpy', 'pandas') if m in sys.modules]; print(bad); sys.exit(bool(bad))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
