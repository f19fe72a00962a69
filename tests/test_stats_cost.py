"""The display's statistics, made cheaply, say what they said before: percentiles as numpy computes them."""

import random

import numpy as np
import pytest

from dogfilter.common.transport.metrics import Window


@pytest.mark.unit
@pytest.mark.timeout(10)
@pytest.mark.parametrize("n", [1, 2, 3, 7, 100, 300, 301])
def test_window_percentiles_match_numpy(n: int) -> None:
    rng = random.Random(n)
    w = Window(300)
    for _ in range(n):
        w.add(rng.choice([rng.uniform(0, 200), rng.expovariate(0.05), 12.5]))  # ties and a long tail
    v = np.array(w.values)
    want = np.percentile(v, (50, 95, 99))
    got = w.summary()
    assert [got["p50"], got["p95"], got["p99"]] == [round(float(x), 2) for x in want]
    assert got["max"] == round(float(v.max()), 2) and got["n"] == len(v)


@pytest.mark.unit
@pytest.mark.timeout(10)
def test_empty_window_says_nothing() -> None:
    assert Window().summary() == {"p50": None, "p95": None, "p99": None, "max": None, "n": 0}
