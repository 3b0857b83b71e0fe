"""benchmarks/wake.py's false-wake sentences: none is a wake phrase, and the held-out split's written sentences
are not the tuning split's (a rule tuned on one meets new sentences on the other)."""

from __future__ import annotations

import importlib.util
import re
import sys
from types import ModuleType

import pytest

from tests.conftest import REPO

WAKE_PHRASES = re.compile(r"\b(okay,? nabu|alexa|hey,? jarvis|hey,? mycroft)\b", re.IGNORECASE)


@pytest.fixture
def bench(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    monkeypatch.syspath_prepend(str(REPO / "benchmarks"))  # wake.py imports its sibling _wake_text
    spec = importlib.util.spec_from_file_location("wake_benchmark", REPO / "benchmarks" / "wake.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "wake_benchmark", module)  # its dataclass looks itself up there
    spec.loader.exec_module(module)
    return module


def test_no_sentence_is_a_wake_phrase(bench: ModuleType) -> None:
    every = [*bench.OTHER, *bench.CONFUSIONS, *bench._wake_text.pool()]
    assert len(set(every)) >= 400
    assert [s for s in every if WAKE_PHRASES.search(s)] == []


def test_the_splits_share_only_the_older_sentences(bench: ModuleType) -> None:
    tuning, held_out = bench.false_wake_sentences("tuning"), bench.false_wake_sentences("held-out")
    assert set(tuning) & set(held_out) == set(bench.OTHER)
    assert len(set(held_out)) >= 200 and len(set(tuning)) >= 200
    assert set(bench.CONFUSIONS) <= set(bench.OTHER) | set(bench.speech.ANSWERS)
