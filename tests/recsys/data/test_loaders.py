import time
from pathlib import Path

import pandas as pd
import pytest
import torch

from recsys.data.errors import DataError
from recsys.data.loaders import load_dataset

ML_SMALL = Path(__file__).resolve().parents[3] / "data" / "ml-latest-small"


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def _rows(ds_path: Path, **kw: object) -> list[tuple[str, str, float, int]]:
    """(user id, item id, value, ts) per interaction, through the id maps."""
    ds = load_dataset(ds_path, **kw)  # type: ignore[arg-type]
    i = ds.interactions
    return [
        (ds.user_ids.to_external(u), ds.item_ids.to_external(it), v, t)
        for u, it, v, t in zip(
            i.user.tolist(), i.item.tolist(), i.value.tolist(), i.ts.tolist(), strict=True
        )
    ]


def test_movielens_csv(tmp_path: Path) -> None:
    f = _write(
        tmp_path / "ratings.csv", "userId,movieId,rating,timestamp\n10,5,4.5,100\n2,7,3.0,90\n"
    )
    ds = load_dataset(f)
    assert ds.user_ids.to_list() == ["2", "10"]
    assert ds.interactions.user.tolist() == [1, 0]
    assert _rows(f) == [("10", "5", 4.5, 100), ("2", "7", 3.0, 90)]
    assert ds.source == str(f)
    assert ds.interactions.ts.dtype == torch.int64


def test_movielens_dat(tmp_path: Path) -> None:
    f = _write(
        tmp_path / "ratings.dat", "1::1193::5::978300760\n1::661::3::978302109\n2::1193::4::1\n"
    )
    assert _rows(f) == [
        ("1", "1193", 5.0, 978300760),
        ("1", "661", 3.0, 978302109),
        ("2", "1193", 4.0, 1),
    ]


def test_movielens_udata(tmp_path: Path) -> None:
    f = _write(tmp_path / "u.data", "196\t242\t3\t881250949\n186\t302\t3\t891717742\n")
    assert _rows(f) == [("196", "242", 3.0, 881250949), ("186", "302", 3.0, 891717742)]
    assert load_dataset(f).interactions.n_users == 2


def test_directory_resolves_to_the_ratings_file(tmp_path: Path) -> None:
    _write(tmp_path / "u.data", "1\t2\t3\t4\n")
    _write(tmp_path / "notes.txt", "ignored")
    assert load_dataset(tmp_path).source == str(tmp_path / "u.data")


def test_fmt_overrides_the_file_name(tmp_path: Path) -> None:
    f = _write(tmp_path / "export.txt", "1\t2\t3\t4\n")
    assert _rows(f, fmt="movielens-udata") == [("1", "2", 3.0, 4)]


def test_generic_csv_aliases_extra_columns_and_string_ids(tmp_path: Path) -> None:
    f = _write(
        tmp_path / "events.csv", "note,item_id,uid,score,time\nx, b ,alice,2,7\ny,a,bob,1,8\n"
    )
    assert _rows(f) == [("alice", "b", 2.0, 7), ("bob", "a", 1.0, 8)]


def test_generic_csv_without_value_or_timestamp_defaults(tmp_path: Path) -> None:
    f = _write(tmp_path / "pairs.csv", "user,item\n1,2\n1,3\n")
    i = load_dataset(f).interactions
    assert i.value.tolist() == [1.0, 1.0]
    assert i.ts.tolist() == [0, 0]


def test_parquet_with_string_ids_and_datetime_timestamps(tmp_path: Path) -> None:
    f = tmp_path / "r.parquet"
    pd.DataFrame(
        {
            "user_id": ["u2", "u1"],
            "itemId": [7, 3],
            "rating": [1.5, 2.0],
            "ts": pd.to_datetime(["1970-01-01 00:00:10", "1970-01-02 00:00:00"]),
        }
    ).to_parquet(f)
    assert _rows(f) == [("u2", "7", 1.5, 10), ("u1", "3", 2.0, 86400)]


def test_duplicates_keep_the_latest_timestamp(tmp_path: Path) -> None:
    text = "user,item,rating,timestamp\n1,1,5,30\n1,3,1,1\n1,1,2,10\n1,2,4,5\n1,2,3,5\n"
    # pair (1,1): ts 30 wins over a later row; pair (1,2): equal ts, the later row wins
    want = [("1", "1", 5.0, 30), ("1", "3", 1.0, 1), ("1", "2", 3.0, 5)]
    assert _rows(_write(tmp_path / "d.csv", text)) == want


def test_threshold_applies_after_deduplication_and_trims_id_maps(tmp_path: Path) -> None:
    text = "user,item,rating,timestamp\n1,1,5,1\n1,1,2,2\n2,2,4,1\n3,3,1,1\n"
    ds = load_dataset(_write(tmp_path / "t.csv", text), threshold=4)
    assert _rows(tmp_path / "t.csv", threshold=4) == [("2", "2", 4.0, 1)]
    assert (ds.interactions.n_users, ds.interactions.n_items) == (1, 1)


def test_blank_lines_are_skipped(tmp_path: Path) -> None:
    f = _write(tmp_path / "b.csv", "user,item\n1,2\n\n3,4\n\n")
    assert len(load_dataset(f).interactions) == 2


@pytest.mark.skipif(not (ML_SMALL / "ratings.csv").exists(), reason="dataset not downloaded")
def test_real_ml_latest_small_loads_fast() -> None:
    start = time.perf_counter()
    ds = load_dataset(ML_SMALL)
    elapsed = time.perf_counter() - start
    i = ds.interactions
    assert (len(i), i.n_users, i.n_items) == (100_836, 610, 9724)
    assert int(i.user.max()) == 609 and int(i.item.max()) == 9723
    assert ds.user_ids.to_external(0) == "1"
    assert (i.value.min().item(), i.value.max().item()) == (0.5, 5.0)
    assert elapsed < 1.0


# ---- bad input -----------------------------------------------------------------------------


def _error(path: Path, **kw: object) -> str:
    with pytest.raises(DataError) as info:
        load_dataset(path, **kw)  # type: ignore[arg-type]
    return str(info.value)


def test_missing_file(tmp_path: Path) -> None:
    msg = _error(tmp_path / "nope.csv")
    assert "nope.csv" in msg and "no such file" in msg


def test_directory_without_a_ratings_file(tmp_path: Path) -> None:
    msg = _error(tmp_path)
    assert str(tmp_path) in msg and "ratings.csv" in msg and "u.data" in msg


@pytest.mark.parametrize(
    ("name", "text"), [("e.csv", ""), ("u.data", ""), ("h.csv", "user,item\n")]
)
def test_empty_file_or_header_only(tmp_path: Path, name: str, text: str) -> None:
    msg = _error(_write(tmp_path / name, text))
    assert name in msg and ("empty" in msg or "no data rows" in msg)


def test_unknown_format(tmp_path: Path) -> None:
    f = _write(tmp_path / "r.txt", "1\t2\n")
    msg = _error(f)
    assert "r.txt" in msg and "movielens-dat" in msg and "parquet" in msg
    assert "'bogus'" in _error(f, fmt="bogus") and "movielens-csv" in _error(f, fmt="bogus")


def test_missing_column_names_it_and_the_columns_found(tmp_path: Path) -> None:
    msg = _error(_write(tmp_path / "m.csv", "user,rating\n1,2\n"))
    assert "m.csv" in msg and "missing item column" in msg and "found columns: user, rating" in msg


def test_movielens_csv_needs_rating_and_timestamp(tmp_path: Path) -> None:
    msg = _error(_write(tmp_path / "ratings.csv", "userId,movieId\n1,2\n"))
    assert "ratings.csv" in msg and "missing value column" in msg


def test_ambiguous_columns(tmp_path: Path) -> None:
    assert "keep one" in _error(_write(tmp_path / "a.csv", "user,user_id,item\n1,1,2\n"))


@pytest.mark.parametrize(
    ("text", "line", "column", "what"),
    [
        ("user,item,rating\n1,2,4\n1,3,x\n", 3, "rating", "'x' is not a finite number"),
        ("user,item,rating\n1,2,4\n\n1,3,\n", 4, "rating", "empty value field"),
        ("user,item,ts\n1,2,5\n1,3,soon\n", 3, "ts", "'soon' is not a finite number"),
        ("user,item,ts\n1,2,\n", 2, "ts", "empty timestamp field"),
        ("user,item\n1,2\n ,3\n", 3, "user", "empty user id"),
        ("user,item\n1,2\n1,\n", 3, "item", "empty item id"),
        ("user,item,rating\n1,2,inf\n", 2, "rating", "'inf' is not a finite number"),
    ],
)
def test_bad_fields_name_line_and_column(
    tmp_path: Path, text: str, line: int, column: str, what: str
) -> None:
    msg = _error(_write(tmp_path / "bad.csv", text))
    assert msg.startswith(f"{tmp_path / 'bad.csv'}, line {line}, column '{column}': ")
    assert what in msg


def test_bad_field_in_headerless_file_counts_lines_from_one(tmp_path: Path) -> None:
    msg = _error(_write(tmp_path / "ratings.dat", "1::2::5::10\n1::3::five::11\n"))
    assert "ratings.dat, line 2, column 'value (field 3)'" in msg and "'five'" in msg


def test_malformed_line_is_located(tmp_path: Path) -> None:
    msg = _error(_write(tmp_path / "u.data", "1\t2\t3\t4\n5\t6\t7\t8\n9\t1\t2\t3\t4\t5\n"))
    assert "u.data, line 3" in msg


@pytest.mark.parametrize(
    ("name", "text", "line"),
    [
        ("ratings.dat", "1::2::3::4\n1:2:3:4:5:6:7\n", 2),
        ("ratings.dat", "1::2::3\n", 1),
        ("u.data", "1\t2\t3\t4\t5\n", 1),
    ],
)
def test_wrong_layout_is_located(tmp_path: Path, name: str, text: str, line: int) -> None:
    msg = _error(_write(tmp_path / name, text))
    assert f"{name}, line {line}: " in msg and "laid out as" in msg


def test_extra_field_in_csv_is_located(tmp_path: Path) -> None:
    msg = _error(_write(tmp_path / "x.csv", "user,item\n1,2\n3,4,5\n"))
    assert "x.csv, line 3" in msg


def test_parquet_null_reports_the_row(tmp_path: Path) -> None:
    f = tmp_path / "n.parquet"
    pd.DataFrame({"user": ["a", None], "item": [1, 2]}).to_parquet(f)
    msg = _error(f)
    assert "n.parquet, row 2, column 'user'" in msg and "empty user id" in msg


def test_threshold_needs_values(tmp_path: Path) -> None:
    f = _write(tmp_path / "p.csv", "user,item\n1,2\n")
    assert "no value column" in _error(f, threshold=3.0)
    g = _write(tmp_path / "q.csv", "user,item,rating\n1,2,1\n")
    assert "lower the threshold" in _error(g, threshold=3.0)
