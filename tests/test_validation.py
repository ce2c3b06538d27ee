"""The one set of value checks (`modeling_depth_anything.validation`): errors name the field and quote the value."""

import math

import pytest

from modeling_depth_anything.validation import (
    check_choice,
    check_int,
    check_multiple_of,
    check_number,
    check_probability,
)


@pytest.mark.parametrize("value", [0, -3, 2.0, True, "4", None])
def test_check_int_refuses_and_quotes(value):
    with pytest.raises(ValueError, match=r"max_steps must be an integer >= 1, got " + repr(value).replace("(", r"\(")):
        check_int("max_steps", value, minimum=1)


def test_check_int_accepts_bounds_and_optional():
    check_int("n", 1, minimum=1, maximum=1)
    check_int("n", None, minimum=1, optional=True)
    with pytest.raises(ValueError, match="or unset"):
        check_int("n", 0, minimum=1, optional=True)
    with pytest.raises(ValueError, match="<= 3"):
        check_int("n", 4, maximum=3)


@pytest.mark.parametrize("value", [math.nan, math.inf, -1e-9, False, "0.1"])
def test_check_number_refuses(value):
    with pytest.raises(ValueError, match="lr must be a finite number >= 0"):
        check_number("lr", value, minimum=0)


def test_check_number_strict_and_maximum():
    check_number("lr", 1e-9, minimum=0, strict=True)
    with pytest.raises(ValueError, match="> 0, got 0"):
        check_number("lr", 0, minimum=0, strict=True)
    with pytest.raises(ValueError, match="<= 1.0, got 1.5"):
        check_probability("p", 1.5)
    check_probability("p", 0)
    check_probability("p", 1)


def test_check_choice_lists_choices():
    check_choice("mode", "v1", ("v1", "v2"))
    with pytest.raises(ValueError, match=r"mode must be one of 'v1', 'v2', got 'v3'"):
        check_choice("mode", "v3", ("v1", "v2"))


def test_check_multiple_of_names_the_factor():
    check_multiple_of("crop_size", 126, 14, "the patch size")
    with pytest.raises(ValueError, match="crop_size must be a multiple of the patch size 14, got 130"):
        check_multiple_of("crop_size", 130, 14, "the patch size")
    with pytest.raises(ValueError, match="integer >= 14"):
        check_multiple_of("crop_size", 0, 14)
