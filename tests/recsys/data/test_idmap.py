import numpy as np
import pandas as pd
import pytest
import torch

from recsys.data.idmap import IdMap


def test_integer_ids_sort_numerically() -> None:
    m = IdMap.from_values([10, 2, 33, 2])
    assert m.to_list() == ["2", "10", "33"]
    assert len(m) == 3


def test_integer_strings_sort_numerically_and_others_lexicographically() -> None:
    assert IdMap.from_values(["10", "9", "100"]).to_list() == ["9", "10", "100"]
    assert IdMap.from_values(["b", "10", "a", "9"]).to_list() == ["10", "9", "a", "b"]


def test_leading_zero_ids_stay_distinct() -> None:
    m = IdMap.from_values(["7", "007", "8"])
    assert m.to_list() == ["007", "7", "8"]
    assert m.encode(["7", "007"]).tolist() == [1, 0]
    assert m.encode(np.array([8, 7])).tolist() == [2, 1]


def test_both_directions_agree() -> None:
    m = IdMap.from_values(["u3", "u1", "u2"])
    for d in range(len(m)):
        assert m.to_dense(m.to_external(d)) == d
    assert m.to_dense("u2") == 1
    assert m.decode(m.encode(["u3", "u1"])) == ["u3", "u1"]
    assert "u1" in m and "u9" not in m
    with pytest.raises(IndexError):
        m.to_external(3)


def test_encode_is_vectorised_over_many_input_types() -> None:
    m = IdMap.from_values(np.array([5, 1, 3]))
    want = [2, 0, 1]
    assert m.encode([5, 1, 3]).tolist() == want
    assert m.encode(np.array([5, 1, 3])).tolist() == want
    assert m.encode(torch.tensor([5, 1, 3])).tolist() == want
    assert m.encode(pd.Series(["5", "1", "3"])).tolist() == want
    assert m.encode(np.array([5.0, 1.0, 3.0])).tolist() == want
    assert m.encode([5]).dtype == torch.int64
    assert m.to_dense(3) == m.to_dense("3") == 1


def test_unknown_ids_raise_key_error_naming_the_id() -> None:
    m = IdMap.from_values(["a", "b"])
    with pytest.raises(KeyError, match="'zz'"):
        m.to_dense("zz")
    with pytest.raises(KeyError, match="'zz'"):
        m.encode(["a", "zz"])


def test_list_round_trip_keeps_order_and_digest() -> None:
    m = IdMap.from_values(["x", "a", "m"])
    back = IdMap.from_list(m.to_list())
    assert back == m
    assert back.digest() == m.digest()
    assert IdMap.from_list(["a", "x", "m"]).digest() != m.digest()
    assert len(m.digest()) == 64


def test_duplicates_in_a_list_are_rejected() -> None:
    with pytest.raises(ValueError, match="'a'"):
        IdMap.from_list(["a", "b", "a"])


def test_range_is_the_identity() -> None:
    m = IdMap.range(4)
    assert m.encode([3, 0]).tolist() == [3, 0]
    assert m.to_external(2) == "2"
