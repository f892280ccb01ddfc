"""A zip file written while it is sent: stored (PNG is compressed already), no temporary file,
memory bounded by one chunk: each entry is read from storage as a stream (from a bucket, the
object's body as it arrives; webapp/jobs/storage.open_stream)."""

from __future__ import annotations

import zipfile
from typing import Iterable, Iterator

from webapp.jobs.storage import open_stream

CHUNK = 64 * 1024


class _Sink:
    """A write-only, unseekable file object that hands its bytes to the generator."""

    def __init__(self) -> None:
        self.chunks: list[bytes] = []

    def write(self, data) -> int:
        self.chunks.append(bytes(data))
        return len(data)

    def flush(self) -> None:
        pass

    def drain(self) -> Iterator[bytes]:
        chunks, self.chunks = self.chunks, []
        yield from chunks


def zip_stream(entries: Iterable[tuple[str, str]]) -> Iterator[bytes]:
    """The bytes of a zip of (name in the zip, storage name) pairs; missing files are skipped. A
    store that fails midway raises (the client sees a cut connection, not a zip missing files)."""
    sink = _Sink()
    with zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_STORED) as archive:
        for arcname, storage_name in entries:
            try:
                source = open_stream(storage_name)
            except FileNotFoundError:
                continue
            with source, archive.open(arcname, "w", force_zip64=True) as target:
                while chunk := source.read(CHUNK):
                    target.write(chunk)
                    yield from sink.drain()
            yield from sink.drain()
    yield from sink.drain()
