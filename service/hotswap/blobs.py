"""A checkpoint directory as one self-verifying bytes blob, the unit published to Redis.

Layout: ``MAGIC`` (8 bytes), a 4-byte big-endian header length, a UTF-8 JSON header
``{"format", "version", "weights_sha256", "files": [{"name", "size", "sha256"}]}``, then
the files' bytes concatenated in header order. Only the checkpoint's known file names are
packed, so unpacking can never write outside its directory.
"""

from __future__ import annotations

import hashlib
import json
import struct
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from recsys.checkpoint import CONFIG, IDS, WEIGHTS, CheckpointError
from service.recommendations.serving import ServedModel, build_served

MAGIC = b"RTBFCKPT"
BLOB_FORMAT = 1
_LENGTH = struct.Struct(">I")
# config.json and the weights are required; ids.json only when the checkpoint has id maps
REQUIRED = (CONFIG, WEIGHTS)
FILES = (CONFIG, WEIGHTS, IDS)


class BlobError(CheckpointError):
    """A blob that is truncated, corrupt, or not the version it was published as."""


@dataclass(frozen=True)
class Blob:
    """An unpacked, verified blob: the version it carries and its files by name."""

    version: str
    weights_sha256: str
    files: dict[str, bytes]


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def pack_checkpoint(
    version: str, directory: Path | str, *, expected_sha256: str | None = None
) -> bytes:
    """Pack the checkpoint at ``directory`` as ``version``.

    ``expected_sha256`` (the registry's record) must match config.json's weights hash, so a
    checkpoint replaced on disk after registration is never published under the old name.
    """
    d = Path(directory)
    files: dict[str, bytes] = {}
    for name in FILES:
        path = d / name
        if path.is_file():
            files[name] = path.read_bytes()
        elif name in REQUIRED:
            raise CheckpointError(f"{d}: missing {name}; cannot publish an incomplete checkpoint")
    try:
        meta: dict[str, Any] = json.loads(files[CONFIG])
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{d / CONFIG}: not valid JSON ({exc})") from None
    weights_sha = _sha256(files[WEIGHTS])
    if weights_sha != meta.get("weights_sha256"):
        raise CheckpointError(
            f"{d / WEIGHTS}: sha256 {weights_sha} does not match config.json; the file is corrupt"
        )
    if expected_sha256 is not None and weights_sha != expected_sha256:
        raise CheckpointError(
            f"{d}: weights sha256 {weights_sha} is not the registered {expected_sha256}; "
            "the checkpoint was replaced after it was registered"
        )
    header = {
        "format": BLOB_FORMAT,
        "version": version,
        "weights_sha256": weights_sha,
        "files": [
            {"name": name, "size": len(data), "sha256": _sha256(data)}
            for name, data in files.items()
        ],
    }
    raw = json.dumps(header, separators=(",", ":")).encode()
    return b"".join([MAGIC, _LENGTH.pack(len(raw)), raw, *files.values()])


def _header(blob: bytes) -> tuple[dict[str, Any], int]:
    start = len(MAGIC) + _LENGTH.size
    if len(blob) < start or not blob.startswith(MAGIC):
        raise BlobError("not a checkpoint blob (bad magic or truncated header)")
    (size,) = _LENGTH.unpack_from(blob, len(MAGIC))
    try:
        header: dict[str, Any] = json.loads(blob[start : start + size])
        _ = header["version"], header["weights_sha256"], header["files"]
    except (ValueError, KeyError, TypeError) as exc:
        raise BlobError(f"checkpoint blob header is unreadable ({exc!r})") from None
    if header.get("format") != BLOB_FORMAT:
        raise BlobError(f"blob format {header.get('format')!r} is not supported ({BLOB_FORMAT})")
    return header, start + size


def read_blob(blob: bytes, *, expected_version: str | None = None) -> Blob:
    """Split and verify ``blob``; raises ``BlobError`` on any mismatch."""
    header, offset = _header(blob)
    version = str(header["version"])
    if expected_version is not None and version != expected_version:
        raise BlobError(f"blob carries version {version!r}, expected {expected_version!r}")
    files: dict[str, bytes] = {}
    for entry in header["files"]:
        name, size = entry.get("name"), entry.get("size")
        if name not in FILES or name in files or not isinstance(size, int) or size < 0:
            raise BlobError(f"blob of {version!r}: bad file entry {entry!r}")
        data = blob[offset : offset + size]
        offset += size
        if len(data) != size or _sha256(data) != entry.get("sha256"):
            raise BlobError(f"blob of {version!r}: {name} is truncated or corrupt (sha256)")
        files[name] = data
    if offset != len(blob):
        raise BlobError(f"blob of {version!r}: {len(blob) - offset} unexpected trailing bytes")
    missing = [n for n in REQUIRED if n not in files]
    if missing:
        raise BlobError(f"blob of {version!r}: missing {missing}")
    if _sha256(files[WEIGHTS]) != header["weights_sha256"]:
        raise BlobError(f"blob of {version!r}: weights do not match the published sha256")
    return Blob(version, str(header["weights_sha256"]), files)


def unpack_to(blob: bytes, directory: Path | str, *, expected_version: str | None = None) -> Blob:
    """Verify ``blob`` and write its files into ``directory`` (created if needed)."""
    parsed = read_blob(blob, expected_version=expected_version)
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    for name, data in parsed.files.items():
        (d / name).write_bytes(data)
    return parsed


def served_from_blob(blob: bytes, *, expected_version: str | None = None) -> ServedModel:
    """A complete ``ServedModel`` from a blob (load_checkpoint re-verifies the weights)."""
    with tempfile.TemporaryDirectory(prefix="rtbf-blob-") as tmp:
        parsed = unpack_to(blob, tmp, expected_version=expected_version)
        return build_served(parsed.version, tmp)
