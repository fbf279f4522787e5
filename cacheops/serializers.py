"""django-redis plug points: an orjson serializer and a zstd compressor (never pickle).

Chosen by dotted path in CACHES["default"]["OPTIONS"] (SERIALIZER, COMPRESSOR).
"""

from __future__ import annotations

from typing import Any

import orjson
import zstandard
from django_redis.compressors.base import BaseCompressor
from django_redis.exceptions import CompressorError
from django_redis.serializers.base import BaseSerializer

# Below this size compression costs more CPU than the bytes it saves.
DEFAULT_MIN_LENGTH = 1024


class OrjsonSerializer(BaseSerializer):
    """Encode values as JSON with orjson: fast, and nothing executable is ever stored."""

    def dumps(self, value: Any) -> bytes:
        """Return the JSON bytes of `value`."""
        return orjson.dumps(value)

    def loads(self, value: bytes) -> Any:
        """Return the value encoded in `value`."""
        return orjson.loads(value)


class ZstdCompressor(BaseCompressor):
    """Compress values above COMPRESS_MIN_LENGTH bytes with zstd; smaller ones are stored as they are.

    A zstd frame starts with a magic number that no JSON text can start with, so uncompressed values are
    told apart by the failed decompression, as django-redis expects (CompressorError → raw value).
    """

    def __init__(self, options: dict[str, Any]) -> None:
        super().__init__(options)
        self.min_length = int(options.get("COMPRESS_MIN_LENGTH", DEFAULT_MIN_LENGTH))
        self.level = int(options.get("COMPRESS_LEVEL", 3))

    def compress(self, value: bytes) -> bytes:
        """Return `value` compressed when it is long enough to be worth it."""
        if len(value) <= self.min_length:
            return value
        return zstandard.ZstdCompressor(level=self.level).compress(value)

    def decompress(self, value: bytes) -> bytes:
        """Return the decompressed bytes, or raise CompressorError when `value` is not a zstd frame."""
        try:
            return zstandard.ZstdDecompressor().decompress(value)
        except zstandard.ZstdError as exc:
            raise CompressorError from exc
