"""Load rating files (MovieLens csv/dat/u.data, generic CSV, Parquet) into ``Interactions``."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from recsys.data.errors import DataError
from recsys.data.idmap import IdMap
from recsys.data.interactions import Interactions

FORMATS = ("movielens-csv", "movielens-dat", "movielens-udata", "csv", "parquet")
# a directory is searched for these, in this order
DIR_FILES = ("ratings.csv", "ratings.dat", "u.data")

ALIASES: dict[str, tuple[str, ...]] = {
    "user": ("user", "user_id", "userId", "uid"),
    "item": ("item", "item_id", "itemId", "movieId", "iid"),
    "value": ("value", "rating", "score"),
    "ts": ("timestamp", "ts", "time"),
}
_ROLE_WORD = {"user": "user", "item": "item", "value": "value", "ts": "timestamp"}


@dataclass
class Dataset:
    """Interactions with the maps from their dense ids back to the source's ids."""

    interactions: Interactions
    user_ids: IdMap
    item_ids: IdMap
    source: str


@dataclass
class _Table:
    """Parsed but unchecked columns, renamed to the roles user/item/value/ts."""

    path: Path
    frame: pd.DataFrame
    names: dict[str, str]  # role -> column name as the file spells it, for messages
    lines: np.ndarray | None  # 1-based text line of each row; None for Parquet (rows are reported)

    def error(self, i: int, role: str, problem: str) -> DataError:
        if self.lines is None:
            return DataError(self.path, problem, row=i + 1, column=self.names[role])
        return DataError(self.path, problem, line=int(self.lines[i]), column=self.names[role])


def _resolve(path: Path) -> Path:
    if path.is_dir():
        for name in DIR_FILES:
            if (path / name).is_file():
                return path / name
        raise DataError(
            path, f"directory holds none of {', '.join(DIR_FILES)}; pass the file itself"
        )
    if not path.exists():
        raise DataError(path, "no such file or directory; check the path")
    return path


def detect_format(path: Path) -> str:
    """Format of a file from its name, e.g. 'ratings.dat' -> 'movielens-dat'."""
    name = path.name.lower()
    if name == "ratings.csv":
        return "movielens-csv"
    if name.endswith(".dat"):
        return "movielens-dat"
    if name == "u.data" or name.endswith(".data"):
        return "movielens-udata"
    if name.endswith(".csv"):
        return "csv"
    if name.endswith((".parquet", ".pq")):
        return "parquet"
    raise DataError(
        path,
        f"cannot tell the format from the file name; pass fmt= one of {', '.join(FORMATS)}",
    )


def _parser_error(path: Path, exc: Exception) -> DataError:
    m = re.search(r"line (\d+)", str(exc))
    line = int(m.group(1)) if m else None
    return DataError(path, f"malformed line ({exc}); every line needs the same fields", line=line)


def _read_text(path: Path, *, sep: str, fields: list[int] | None = None) -> _Table:
    """Read a headered CSV (``fields`` None: roles from ALIASES) or a headerless file.

    A headerless line has ``len(fields)`` data fields at positions ``fields`` (user, item,
    value, timestamp); every other position must be empty, which is how "::" is split by
    the single-character separator ":" (the C parser takes no multi-character sep).
    """
    header = fields is None
    names: dict[str, str]
    try:
        if fields is None:
            found = [str(c) for c in pd.read_csv(path, nrows=0).columns]
            names = _match_columns(path, found)
            ids: list[str] | list[int] = [names["user"], names["item"]]
        else:
            names = {r: f"{r} (field {k + 1})" for k, r in enumerate(ALIASES)}
            ids = fields[:2]
        # all columns are read, not usecols: with usecols pandas silently drops extra fields
        frame = pd.read_csv(
            path,
            sep=sep,
            header=0 if header else None,
            dtype={c: str for c in ids},
            na_filter=False,  # empty fields stay "" so they are reported, not silently NaN
            skip_blank_lines=False,  # keeps row i on line i + offset
        )
    except pd.errors.EmptyDataError:
        raise DataError(path, "file is empty; it needs at least one interaction") from None
    except pd.errors.ParserError as exc:
        raise _parser_error(path, exc) from None
    except UnicodeDecodeError as exc:
        raise DataError(path, f"not UTF-8 text ({exc}); re-encode the file as UTF-8") from None
    lines = np.arange(len(frame), dtype=np.int64) + (2 if header else 1)
    if fields is None:
        frame = frame[list(names.values())].set_axis(list(names), axis=1)
    else:
        frame = _pick_fields(path, frame, fields, sep, lines)
    # blank lines (e.g. a trailing empty line) are dropped, not reported
    cand = frame["user"] == ""
    if cand.any():
        blank = cand.copy()
        for col in frame.columns:
            blank &= frame[col].astype(str) == ""
        frame, lines = frame[~blank.to_numpy()], lines[~blank.to_numpy()]
    if len(frame) == 0:
        what = "a header but no data rows" if header else "no data rows"
        raise DataError(path, f"file has {what}; it needs at least one interaction")
    return _Table(path, frame.reset_index(drop=True), names, lines)


def _pick_fields(
    path: Path, frame: pd.DataFrame, fields: list[int], sep: str, lines: np.ndarray
) -> pd.DataFrame:
    """The data fields of a headerless file, renamed to roles, after checking the layout."""
    width = fields[-1] + 1
    words = dict(zip(fields, _ROLE_WORD.values(), strict=True))
    shape = sep.join(words.get(k, "") for k in range(width))
    if frame.shape[1] != width:
        raise DataError(
            path,
            f"expected lines laid out as {shape!r}: {width} {sep!r}-separated parts, "
            f"found {frame.shape[1]}",
            line=1,
        )
    for k in sorted(set(range(width)) - set(fields)):
        stray = np.flatnonzero((frame[k].astype(str) != "").to_numpy())
        if stray.size:
            raise DataError(
                path, f"fields must be laid out as {shape!r}", line=int(lines[stray[0]])
            )
    return frame[fields].set_axis(list(ALIASES), axis=1)


def _match_columns(path: Path, found: list[str]) -> dict[str, str]:
    """Role -> column name; user and item are required, value and timestamp optional."""
    lower = {c.strip().lower(): c for c in found}
    names: dict[str, str] = {}
    for role, aliases in ALIASES.items():
        hits = [lower[a.lower()] for a in aliases if a.lower() in lower]
        if len(hits) > 1:
            raise DataError(path, f"columns {hits} all name the {_ROLE_WORD[role]}; keep one")
        if hits:
            names[role] = hits[0]
        elif role in ("user", "item"):
            raise DataError(
                path,
                f"missing {_ROLE_WORD[role]} column (one of {', '.join(aliases)}); "
                f"found columns: {', '.join(found) or '(none)'}",
            )
    return names


def _read_parquet(path: Path) -> _Table:
    import pyarrow.parquet as pq

    try:
        schema = pq.read_schema(path)
        names = _match_columns(path, list(schema.names))
        table = pq.read_table(path, columns=list(names.values()))
    except (OSError, ValueError) as exc:
        if isinstance(exc, DataError):
            raise
        raise DataError(path, f"not a readable Parquet file ({exc})") from None
    if table.num_rows == 0:
        raise DataError(path, "file has no rows; it needs at least one interaction")
    frame = table.to_pandas().rename(columns={v: k for k, v in names.items()})
    return _Table(path, frame, names, None)


def _ids(t: _Table, role: str) -> tuple[np.ndarray, np.ndarray]:
    """(code per row, distinct stripped ids) of the user or item column."""
    col = t.frame[role]
    codes, uniq = pd.factorize(col)
    if (codes < 0).any():
        raise t.error(int(np.flatnonzero(codes < 0)[0]), role, f"empty {role} id; fill it in")
    if col.dtype.kind in "iu":
        return codes.astype(np.int64), np.asarray(uniq)
    if col.dtype.kind == "f":
        bad = np.flatnonzero(np.asarray(uniq) != np.round(np.asarray(uniq)))
        if bad.size:
            i = int(np.flatnonzero(codes == bad[0])[0])
            raise t.error(i, role, f"{role} id {uniq[bad[0]]!r} is not an integer")
        return codes.astype(np.int64), np.asarray(uniq).astype(np.int64)
    stripped = pd.Index(np.asarray(uniq, dtype=object)).astype(str).str.strip()
    empty = np.flatnonzero(stripped == "")
    if empty.size:
        i = int(np.flatnonzero(np.isin(codes, empty))[0])
        raise t.error(i, role, f"empty {role} id; fill it in")
    # ids differing only by surrounding spaces are the same id
    remap, canon = pd.factorize(stripped)
    return remap[codes].astype(np.int64), np.asarray(canon, dtype=object)


def _numbers(t: _Table, role: str) -> np.ndarray:
    """The value or timestamp column as float64; every field must be a finite number."""
    col = t.frame[role]
    if isinstance(col.dtype, pd.DatetimeTZDtype) or col.dtype.kind == "M":
        if col.isna().any():
            i = int(np.flatnonzero(col.isna())[0])
            raise t.error(i, role, f"empty {_ROLE_WORD[role]} field; every row needs one")
        # tz-aware times are instants; naive ones are taken as UTC
        utc = col.dt.tz_convert("UTC") if col.dt.tz is not None else col.dt.tz_localize("UTC")
        secs = (utc - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(seconds=1)
        return secs.to_numpy(dtype=np.float64)
    if col.dtype.kind in "iuf":
        arr = col.to_numpy(dtype=np.float64, na_value=np.nan)
    else:
        arr = pd.to_numeric(col.astype(str).str.strip(), errors="coerce").to_numpy(
            dtype=np.float64, na_value=np.nan
        )
    bad = np.flatnonzero(~np.isfinite(arr))
    if bad.size:
        i = int(bad[0])
        raw = col.iloc[i]
        word = _ROLE_WORD[role]
        if raw is None or (isinstance(raw, float) and np.isnan(raw)) or str(raw).strip() == "":
            raise t.error(i, role, f"empty {word} field; every row needs a number here")
        raise t.error(i, role, f"{word} {str(raw)!r} is not a finite number")
    return arr


def _timestamps(t: _Table) -> np.ndarray:
    col = t.frame["ts"]
    if col.dtype.kind in "iu":
        return col.to_numpy(dtype=np.int64)
    # float seconds (e.g. "964982703.0" from a spreadsheet export) are truncated to whole seconds
    return np.floor(_numbers(t, "ts")).astype(np.int64)


def _latest_per_pair(key: np.ndarray, ts: np.ndarray) -> np.ndarray:
    """Row indices (ascending) keeping, per key, the latest ts (the later row on a tie)."""
    # hashing finds the (usually few) repeated rows in O(N); only those get sorted
    dup = np.flatnonzero(pd.Series(key).duplicated(keep=False).to_numpy())
    if dup.size == 0:
        return np.arange(len(key))
    order = dup[np.lexsort((ts[dup], key[dup]))]  # stable, so equal ts keep file order
    sk = key[order]
    last = np.ones(len(order), dtype=bool)
    last[:-1] = sk[1:] != sk[:-1]
    keep = np.ones(len(key), dtype=bool)
    keep[dup] = False
    keep[order[last]] = True
    return np.flatnonzero(keep)


def _dense(uniq: np.ndarray, codes: np.ndarray) -> tuple[IdMap, np.ndarray]:
    """IdMap of the ids in use and the dense id of every row."""
    used = np.unique(codes)
    ids = IdMap.from_values(uniq[used])
    lookup = np.full(len(uniq), -1, dtype=np.int64)
    lookup[used] = ids.encode(uniq[used]).numpy()
    return ids, lookup[codes]


def load_dataset(
    path: Path | str, *, fmt: str | None = None, threshold: float | None = None
) -> Dataset:
    """Load a ratings file or a directory holding one; DataError on any bad input.

    Every row is an interaction unless ``threshold`` is given (keep value >= threshold).
    Repeated (user, item) pairs collapse to the latest one by timestamp before the
    threshold applies, so a later low rating overrides an earlier high one. Id maps
    only hold ids that keep at least one interaction.
    """
    file = _resolve(Path(path))
    if fmt is not None and fmt not in FORMATS:
        raise DataError(file, f"unknown format {fmt!r}; supported: {', '.join(FORMATS)}")
    fmt = fmt or detect_format(file)
    if file.stat().st_size == 0:
        raise DataError(file, "file is empty; it needs at least one interaction")
    if fmt == "parquet":
        t = _read_parquet(file)
    elif fmt == "movielens-dat":
        t = _read_text(file, sep=":", fields=[0, 2, 4, 6])
    elif fmt == "movielens-udata":
        t = _read_text(file, sep="\t", fields=[0, 1, 2, 3])
    else:
        t = _read_text(file, sep=",")
        if fmt == "movielens-csv":
            for role in ("value", "ts"):
                if role not in t.names:
                    raise DataError(
                        file,
                        f"missing {_ROLE_WORD[role]} column (one of {', '.join(ALIASES[role])}); "
                        "a MovieLens ratings.csv has userId,movieId,rating,timestamp",
                    )
    return _build(t, threshold)


def _build(t: _Table, threshold: float | None) -> Dataset:
    u_codes, u_uniq = _ids(t, "user")
    i_codes, i_uniq = _ids(t, "item")
    n = len(t.frame)
    value = _numbers(t, "value") if "value" in t.names else np.ones(n)
    ts = _timestamps(t) if "ts" in t.names else np.zeros(n, dtype=np.int64)
    keep = _latest_per_pair(u_codes * len(i_uniq) + i_codes, ts)
    if threshold is not None:
        if "value" not in t.names:
            raise DataError(t.path, f"threshold={threshold} given but the file has no value column")
        keep = keep[value[keep] >= threshold]
        if keep.size == 0:
            raise DataError(t.path, f"no interaction has value >= {threshold}; lower the threshold")
    user_ids, user = _dense(u_uniq, u_codes[keep])
    item_ids, item = _dense(i_uniq, i_codes[keep])
    inter = Interactions.from_pairs(
        torch.from_numpy(user),
        torch.from_numpy(item),
        len(user_ids),
        len(item_ids),
        value=torch.from_numpy(value[keep].astype(np.float32)),
        ts=torch.from_numpy(np.ascontiguousarray(ts[keep])),
    )
    return Dataset(inter, user_ids, item_ids, str(t.path))
