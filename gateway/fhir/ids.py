"""Ids for resources the server creates: UUIDv7, time-ordered (RFC 9562 §5.7).

Random v4 ids put every new row, and its dozen index rows, on a random B-tree page, so each
commit rewrote dozens of pages; time-ordered ids append to the same few pages.
"""

import os
import time
import uuid


def new_resource_id() -> str:
    """A UUIDv7: 48 bits of Unix milliseconds, version and variant bits, 74 random bits."""
    millis = time.time_ns() // 1_000_000
    random_bits = int.from_bytes(os.urandom(10), "big")
    value = (millis & ((1 << 48) - 1)) << 80 | random_bits & ((1 << 80) - 1)
    value = value & ~(0xF << 76) | 0x7 << 76  # version 7
    value = value & ~(0x3 << 62) | 0x2 << 62  # RFC 9562 variant
    return str(uuid.UUID(int=value))
