"""shape_vectors: the one place a request's ``dimensions`` and ``normalize`` apply."""

from __future__ import annotations

import math

import pytest

from pluggably.embedding_vectors import shape_vectors
from pluggably.errors import InvalidParameter


def _length(vector: list[float]) -> float:
    return math.sqrt(sum(x * x for x in vector))


def test_normalize_scales_each_vector_to_unit_length() -> None:
    out = shape_vectors([[3.0, 4.0], [0.0, 2.0]], None, normalize=True)
    assert out == [[0.6, 0.8], [0.0, 1.0]]


def test_without_normalize_the_vectors_pass_as_they_are() -> None:
    assert shape_vectors([[3.0, 4.0]], None, normalize=False) == [[3.0, 4.0]]


def test_dimensions_keeps_the_first_components_then_renormalizes() -> None:
    out = shape_vectors([[3.0, 4.0, 12.0]], 2, normalize=True)
    assert out == [[0.6, 0.8]]
    assert _length(out[0]) == pytest.approx(1.0)


def test_dimensions_without_normalize_only_truncates() -> None:
    assert shape_vectors([[3.0, 4.0, 12.0]], 1, normalize=False) == [[3.0]]


def test_a_zero_vector_stays_zero() -> None:
    assert shape_vectors([[0.0, 0.0]], None, normalize=True) == [[0.0, 0.0]]


def test_more_dimensions_than_the_model_gives_is_a_400_naming_its_size() -> None:
    with pytest.raises(InvalidParameter, match="have 3; ask for 3 or fewer") as info:
        shape_vectors([[1.0, 2.0, 3.0]], 4, normalize=True)
    assert info.value.details[0]["loc"] == ["parameters", "dimensions"]
