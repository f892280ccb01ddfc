"""The S3-compatible storage backend (settings.py picks it when S3_BUCKET is set).

django-storages' S3Storage, with three changes the service needs on several machines:

* reads stream: open_stream() hands back the body of a GET as it arrives (S3Storage.open reads
  a whole object into memory before the first byte is returned), so serving a result or writing
  results.zip holds one chunk at a time, never a whole file;
* the bucket object is per thread, like S3Storage's connection already is (boto3's resources are
  not thread-safe, and a worker uploads its checkpoints from a thread of its own);
* list_files() walks a prefix with each object's modification time in one request per 1000
  keys (the retention sweep; S3Storage would ask once per file).

Why stream through the web instead of redirecting to presigned URLs: the owner check then
applies to every byte on every request (a presigned URL is a bearer token that works for anyone
until it expires, and ends up in browser histories, logs and shared links); the bucket needs no
address that browsers can reach (MinIO on a private network, a bucket behind a firewall); the
URLs, caching headers, nosniff and download names stay exactly as they are with local files;
and no clock skew between web and bucket can make a link expire early. The price is the web's
bandwidth: results are a few MB, so a web process serves many of them per second. A
deployment that must take that load off the web servers can put a CDN in front of the web.
"""

from __future__ import annotations

import posixpath
from datetime import datetime
from typing import IO, Iterator

from botocore.exceptions import ClientError
from storages.backends.s3 import S3Storage
from storages.utils import clean_name

MISSING_CODES = {"404", "NoSuchKey", "NotFound"}


class BucketStorage(S3Storage):
    @property
    def bucket(self):
        bucket = getattr(self._connections, "bucket", None)
        if bucket is None:
            bucket = self._connections.bucket = self.connection.Bucket(self.bucket_name)
        return bucket

    def key(self, name: str) -> str:
        """The object key of a storage name (S3_PREFIX in front)."""
        return self._normalize_name(clean_name(name))

    def open_stream(self, name: str) -> IO[bytes]:
        """A readable, unseekable file object streaming the object's bytes (`.size` is its length);
        FileNotFoundError if there is no such object."""
        try:
            answer = self.connection.meta.client.get_object(Bucket=self.bucket_name, Key=self.key(name))
        except ClientError as err:
            if _missing(err):
                raise FileNotFoundError(f"no such file in the bucket: {name}") from err
            raise
        body = answer["Body"]
        body.size = answer.get("ContentLength")
        return body

    def list_files(self, prefix: str) -> Iterator[tuple[str, datetime]]:
        """(storage name, last modified) of every object under `prefix` (a folder name)."""
        root = self.key(prefix).rstrip("/") + "/"
        location = self.key("").rstrip("/")
        paginator = self.connection.meta.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket_name, Prefix=root):
            for entry in page.get("Contents", ()):
                key = entry["Key"]
                yield (posixpath.relpath(key, location) if location else key), entry["LastModified"]


def _missing(err: ClientError) -> bool:
    error = err.response.get("Error", {})
    status = err.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return str(error.get("Code")) in MISSING_CODES or status == 404
