from recsys.data.errors import DataError


def test_message_names_file_line_column_and_problem() -> None:
    err = DataError("r.csv", "rating 'x' is not a number", line=3, column="rating")
    assert str(err) == "r.csv, line 3, column 'rating': rating 'x' is not a number"
    assert (err.path, err.line, err.column) == ("r.csv", 3, "rating")
    assert isinstance(err, ValueError)


def test_row_is_reported_for_files_without_lines() -> None:
    assert str(DataError("r.parquet", "empty", row=2)) == "r.parquet, row 2: empty"
