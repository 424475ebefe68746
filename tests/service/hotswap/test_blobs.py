"""Checkpoint blobs: a round trip is exact; any corruption is refused with a clear error."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest
import torch

from recsys.checkpoint import CONFIG, IDS, WEIGHTS, CheckpointError, read_meta
from service.hotswap.blobs import (
    MAGIC,
    BlobError,
    pack_checkpoint,
    read_blob,
    served_from_blob,
    unpack_to,
)
from service.recommendations.serving import build_served
from tests.service.recommendations.kit import Checkpoints


def test_round_trip_is_byte_exact_and_serves_the_same_scores(
    checkpoints: Checkpoints, tmp_path: Path
) -> None:
    blob = pack_checkpoint("A", checkpoints.v1)
    parsed = read_blob(blob, expected_version="A")
    assert parsed.version == "A"
    assert parsed.weights_sha256 == read_meta(checkpoints.v1)["weights_sha256"]
    assert set(parsed.files) == {CONFIG, WEIGHTS, IDS}
    unpack_to(blob, tmp_path / "out")
    for name in (CONFIG, WEIGHTS, IDS):
        assert (tmp_path / "out" / name).read_bytes() == (checkpoints.v1 / name).read_bytes()

    served, direct = served_from_blob(blob), build_served("A", checkpoints.v1)
    assert served.version == "A" and served.item_ids == direct.item_ids
    assert served.user_index == direct.user_index
    for name, tensor in direct.model.state_dict().items():
        assert torch.equal(served.model.state_dict()[name], tensor), name
    assert served.top_k("u3", set(), 5) == direct.top_k("u3", set(), 5)


def test_a_flipped_byte_anywhere_in_a_file_is_rejected(checkpoints: Checkpoints) -> None:
    blob = bytearray(pack_checkpoint("A", checkpoints.v1))
    for offset in (len(blob) - 1, len(blob) // 2, len(blob) - 2000):  # ids, weights, ...
        corrupt = bytearray(blob)
        corrupt[offset] ^= 0xFF
        with pytest.raises(BlobError, match="corrupt"):
            read_blob(bytes(corrupt))
        with pytest.raises(BlobError):
            served_from_blob(bytes(corrupt))


@pytest.mark.parametrize(
    ("mangle", "message"),
    [
        (lambda b: b[:-10], "truncated or corrupt"),
        (lambda b: b + b"x", "trailing bytes"),
        (lambda b: b"NOTABLOB" + b[8:], "bad magic"),
        (lambda b: b[:10], "bad magic or truncated"),
        (lambda b: b"", "bad magic or truncated"),
    ],
)
def test_truncated_or_foreign_blobs_are_rejected(
    checkpoints: Checkpoints, mangle: object, message: str
) -> None:
    blob = pack_checkpoint("A", checkpoints.v1)
    with pytest.raises(BlobError, match=message):
        read_blob(mangle(blob))  # type: ignore[operator]


def test_a_blob_must_carry_the_version_it_was_fetched_as(checkpoints: Checkpoints) -> None:
    blob = pack_checkpoint("A", checkpoints.v1)
    with pytest.raises(BlobError, match="expected 'B'"):
        served_from_blob(blob, expected_version="B")


def test_file_names_outside_the_checkpoint_are_refused(checkpoints: Checkpoints) -> None:
    # a header naming ../evil would otherwise write outside the unpack directory
    payload = b"owned"
    header = {
        "format": 1,
        "version": "A",
        "weights_sha256": "0" * 64,
        "files": [{"name": "../evil", "size": len(payload), "sha256": "0" * 64}],
    }
    raw = json.dumps(header).encode()
    with pytest.raises(BlobError, match="bad file entry"):
        read_blob(MAGIC + struct.pack(">I", len(raw)) + raw + payload)


def test_packing_checks_the_registered_sha256(checkpoints: Checkpoints, tmp_path: Path) -> None:
    other = str(read_meta(checkpoints.v2)["weights_sha256"])
    with pytest.raises(CheckpointError, match="replaced after it was registered"):
        pack_checkpoint("A", checkpoints.v1, expected_sha256=other)
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / CONFIG).write_text((checkpoints.v1 / CONFIG).read_text())
    (broken / WEIGHTS).write_bytes((checkpoints.v2 / WEIGHTS).read_bytes())
    with pytest.raises(CheckpointError, match=r"does not match config\.json"):
        pack_checkpoint("A", broken)
    (broken / WEIGHTS).unlink()
    with pytest.raises(CheckpointError, match=r"missing model\.safetensors"):
        pack_checkpoint("A", broken)
