"""TFRecord framing: each record is

    uint64 length (little-endian) | uint32 masked_crc32c(length) | payload | uint32 masked_crc32c(payload)

with mask(crc) = ((crc >> 15 | crc << 17) + 0xa282ead8) mod 2**32. Both checksums are verified.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path
from typing import Iterable, Iterator

import crc32c

from emcom.data.errors import DataError

_HEADER = struct.Struct("<QI")
_FOOTER = struct.Struct("<I")
_MASK_DELTA = 0xA282EAD8


def masked_crc(data: bytes) -> int:
    """TFRecord's masked CRC-32C of `data`."""
    crc = crc32c.crc32c(data)
    return (((crc >> 15) | (crc << 17)) + _MASK_DELTA) & 0xFFFFFFFF


def read_records(path: str | os.PathLike, buffer_size: int = 1 << 20) -> Iterator[bytes]:
    """Yields the payloads of the TFRecord file `path`, in file order, checking both CRCs.

    Raises DataError naming the file, the record index and its byte offset on truncation or a
    checksum mismatch. Memory is bounded by one record plus the read buffer.
    """
    path = Path(path)
    with open(path, "rb", buffering=buffer_size) as f:
        index, offset = 0, 0
        while True:
            header = f.read(_HEADER.size)
            if not header:
                return
            where = f"{path}: record {index} (byte offset {offset})"
            if len(header) < _HEADER.size:
                raise DataError(f"{where}: truncated record header ({len(header)} of 12 bytes)")
            length, length_crc = _HEADER.unpack(header)
            if masked_crc(header[:8]) != length_crc:
                raise DataError(f"{where}: length CRC mismatch (corrupt or not a TFRecord file)")
            body = f.read(length + _FOOTER.size)
            if len(body) < length + _FOOTER.size:
                raise DataError(f"{where}: truncated record ({len(body)} of {length + 4} bytes after header)")
            payload = body[:length]
            if masked_crc(payload) != _FOOTER.unpack_from(body, length)[0]:
                raise DataError(f"{where}: payload CRC mismatch (corrupt data)")
            yield payload
            index += 1
            offset += _HEADER.size + length + _FOOTER.size


def write_records(path: str | os.PathLike, payloads: Iterable[bytes]) -> int:
    """Writes `payloads` as a TFRecord file (for benchmarks and tests); returns the record count."""
    count = 0
    with open(path, "wb") as f:
        for payload in payloads:
            length = struct.pack("<Q", len(payload))
            f.write(length + struct.pack("<I", masked_crc(length)))
            f.write(payload)
            f.write(struct.pack("<I", masked_crc(payload)))
            count += 1
    return count
