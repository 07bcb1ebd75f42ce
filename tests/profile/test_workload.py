"""Lengths: read once from a profile's text into a type, and written back as the same text."""

from __future__ import annotations

import random

import pytest

from pdpipeline.profile import Lengths, WorkloadPoint


@pytest.mark.parametrize(("text", "lo", "hi"), [("512", 512, 512), ("256:1024", 256, 1024)])
def test_lengths_parse(text: str, lo: int, hi: int):
    lengths = Lengths.parse(text)
    assert (lengths.lo, lengths.hi) == (lo, hi)
    assert str(lengths) == text


def test_lengths_parse_takes_an_int():
    assert Lengths.parse(128) == Lengths(128, 128)


@pytest.mark.parametrize("text", ["0", "5:2", "x", "0:4", "-3"])
def test_lengths_parse_rejects(text: str):
    with pytest.raises(ValueError):
        Lengths.parse(text)


def test_fixed_length_draws_no_randomness():
    rng = random.Random(0)
    state = rng.getstate()
    assert Lengths(7, 7).draw(rng) == 7
    assert rng.getstate() == state


@pytest.mark.parametrize("text", ["512", "256:1024"])
def test_a_workload_point_holds_its_lengths_and_dumps_their_text(text: str):
    point = WorkloadPoint.model_validate({"input_len": text, "output_len": 16})
    assert point.input_len == Lengths.parse(text) and point.output_len == Lengths(16, 16)
    assert point.model_dump() == {"input_len": text, "output_len": "16"}
    assert WorkloadPoint.model_validate(point.model_dump()) == point
