"""FIGA edit labels on hand-made token sequences (the paper's Levenshtein rule over token ids)."""

import numpy as np
import pytest

from bench.edits import edit_labels, response_labels


def labels(a, b):
    neg, pos = edit_labels(a, b)
    return neg.tolist(), pos.tolist()


def test_insertion_marks_only_the_new_revision_tokens():
    assert labels([1, 2, 3], [1, 2, 9, 3]) == ([False] * 3, [False, False, True, False])


def test_deletion_marks_only_the_removed_initial_tokens():
    assert labels([1, 2, 3, 4], [1, 2, 4]) == ([False, False, True, False], [False] * 3)


def test_substitution_marks_both_sides():
    assert labels([1, 2, 3], [1, 7, 3]) == ([False, True, False], [False, True, False])


def test_identical_responses_have_no_labels():
    assert labels([5, 6, 7], [5, 6, 7]) == ([False] * 3, [False] * 3)


@pytest.mark.parametrize("a,b,expected", [
    ([], [5, 6], ([], [True, True])),
    ([1, 2], [], ([True, True], [])),
    ([], [], ([], [])),
])
def test_empty_sides(a, b, expected):
    assert labels(a, b) == expected


def test_mixed_edit_counts_equal_the_levenshtein_distance():
    a, b = [1, 2, 3, 4, 5, 6], [1, 9, 3, 5, 6, 7, 8]
    neg, pos = edit_labels(a, b)
    # substitute 2->9, delete 4, insert 7 and 8
    assert neg.tolist() == [False, True, False, True, False, False]
    assert pos.tolist() == [False, True, False, False, False, True, True]


def test_revision_end_token_is_positive_and_initial_end_token_neutral():
    eos = 2
    neg, pos = response_labels([10, 11, eos], [10, 11, eos])
    assert not neg.any()
    assert pos.tolist() == [False, False, True]
    neg, pos = response_labels([10, 11, 12, eos], [10, 13, eos])
    assert neg.tolist() == [False, True, True, False]
    assert pos.tolist() == [False, True, True]
    assert isinstance(neg, np.ndarray)
