"""RTEDGE_TEST_TIME_SCALE and the emulated Hypothesis budget: the knobs that let the suite run in an
emulated ARM root without changing what any test checks."""

from __future__ import annotations

import time

import pytest

from rtedge.testing import RealtimeServer
from rtedge.testing._base import time_scale
from tests.conftest import emulated_examples


@pytest.mark.parametrize("raw, scale", [("1", 1.0), ("4", 4.0), ("2.5", 2.5)])
def test_the_scale_is_read_from_the_environment(monkeypatch, raw, scale):
    monkeypatch.setenv("RTEDGE_TEST_TIME_SCALE", raw)
    assert time_scale() == scale


@pytest.mark.parametrize("raw", ["0.5", "0", "-2", "fast", "nan"])
def test_a_scale_below_one_or_not_a_number_is_refused(monkeypatch, raw):
    monkeypatch.setenv("RTEDGE_TEST_TIME_SCALE", raw)
    with pytest.raises(ValueError, match="RTEDGE_TEST_TIME_SCALE"):
        time_scale()


def test_a_server_wait_lasts_its_timeout_times_the_scale(monkeypatch):
    monkeypatch.setenv("RTEDGE_TEST_TIME_SCALE", "3")
    with RealtimeServer() as srv:
        started = time.monotonic()
        with pytest.raises(TimeoutError, match=r"within 0.15 s \(0.05 s x RTEDGE_TEST_TIME_SCALE 3\)"):
            srv.wait_for_received("session.update", timeout=0.05)
        assert time.monotonic() - started >= 0.15


@pytest.mark.parametrize("n, expected", [(250, 50), (60, 12), (40, 10), (25, 10), (8, 8)])
def test_the_emulated_budget_is_a_fifth_with_a_floor_of_ten(n, expected):
    assert emulated_examples(n) == expected
