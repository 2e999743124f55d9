"""The pure parts of soar's own rule types: which buckets a window judges, what the marks prove."""

from __future__ import annotations

from soar.scheduler.baselines import MAX_MARKS, _add_marks, _prev, buckets
from soar.scheduler.planning import Window


def test_a_window_judges_the_buckets_that_end_inside_it() -> None:
    assert buckets(Window(100.0, 400.0), 60.0) == [60.0, 120.0, 180.0, 240.0, 300.0]  # ends 120 .. 360
    assert buckets(Window(120.0, 180.0), 60.0) == [120.0]  # [120, 180) ends at the window's end: judged
    assert buckets(Window(121.0, 179.9), 60.0) == []  # none ends inside: the next window judges it
    # consecutive windows (a look-back overlap) judge every bucket at least once
    seen = set(buckets(Window(0.0, 65.0), 60.0)) | set(buckets(Window(35.0, 130.0), 60.0))
    assert seen == {0.0, 60.0}


def test_marks_prove_a_sighting_strictly_before() -> None:
    marks = [1_000, 5_000, 9_000]
    assert _prev(marks, 5_000) == 1_000  # a sighting at the same millisecond is not one before
    assert _prev(marks, 5_001) == 5_000
    assert _prev(marks, 1_000) is None


def test_marks_stay_few_and_keep_the_newest() -> None:
    marks = _add_marks([], list(range(0, 100_000, 1000)))
    assert len(marks) == MAX_MARKS and marks[-1] == 99_000 and marks == sorted(set(marks))
    assert _add_marks([3, 1], [2, 3]) == [1, 2, 3]
