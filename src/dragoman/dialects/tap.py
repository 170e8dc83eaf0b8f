"""The shared half of a stream tap: what every dialect's tap keeps while a same-dialect stream passes.

`feed` keeps the first `HEAD` bytes and roughly the last `TAIL` bytes, counts marker byte strings
and notices end markers, all without decoding anything. A dialect's tap says which markers matter
and reads the kept head and tail at `finish` (where the usage-bearing events are).
"""

from __future__ import annotations

from collections import deque

HEAD = 16 * 1024  # Anthropic's message_start (input usage) is in the first bytes
TAIL = 64 * 1024  # usage, finish reasons and Responses' final event are in the last ones


class ByteTap:
    __slots__ = (
        "_counts",
        "_dropped",
        "_edge",
        "_end_markers",
        "_ended",
        "_head",
        "_head_size",
        "_tail",
        "_tail_size",
        "count_of",
    )

    def __init__(self, end_markers: tuple[bytes, ...], count_markers: tuple[bytes, ...] = ()) -> None:
        self._end_markers = end_markers
        self.count_of = count_markers
        self._counts = 0
        self._ended = False
        self._head: list[bytes] = []
        self._head_size = 0
        self._tail: deque[bytes] = deque()
        self._tail_size = 0
        self._dropped = False
        self._edge = b""  # the last bytes of the previous chunk: a marker may straddle two chunks

    def feed(self, chunk: bytes) -> None:
        if self._head_size < HEAD:
            self._head.append(chunk)
            self._head_size += len(chunk)
        tail = self._tail
        tail.append(chunk)
        self._tail_size += len(chunk)
        while self._tail_size - len(tail[0]) > TAIL:
            self._tail_size -= len(tail.popleft())
            self._dropped = True
        for marker in self.count_of:
            self._counts += chunk.count(marker)
        if not self._ended:
            window = self._edge + chunk
            for marker in self._end_markers:
                if marker in window:
                    self._ended = True
                    break
            self._edge = window[-32:]

    @property
    def ended(self) -> bool:
        return self._ended

    @property
    def counted(self) -> int:
        return self._counts

    def head(self) -> bytes:
        return b"".join(self._head)

    def tail(self) -> bytes:
        """The kept tail, starting at a line boundary when it was cut."""
        data = b"".join(self._tail)
        if self._dropped:
            cut = data.find(b"\n")
            data = data[cut + 1 :] if cut >= 0 else b""
        return data

    def raw_tail(self) -> bytes:
        """The kept tail as it is, maybe starting inside a line (for finding a field in a cut event)."""
        return b"".join(self._tail)

    def whole(self) -> bytes | None:
        """Every byte, when the stream was small enough to keep both ends in one piece."""
        return None if self._dropped else b"".join(self._tail)


def data_lines(data: bytes, *markers: bytes) -> list[bytes]:
    """The payloads of the `data:` lines holding any of `markers`, in stream order: the few events a
    tap reads, found by searching for the markers (C-speed byte scans), so that the rest of a stream
    is never split, framed or decoded."""
    found: dict[int, bytes] = {}  # line start -> payload
    for marker in markers:
        at = data.find(marker)
        while at >= 0:
            start = data.rfind(b"\n", 0, at) + 1
            end = data.find(b"\n", at)
            if end < 0:
                end = len(data)
            if start not in found:
                line = data[start:end].rstrip(b"\r")
                if line[:5] == b"data:":
                    found[start] = line[6:] if line[5:6] == b" " else line[5:]
            at = data.find(marker, end)
    return [found[k] for k in sorted(found)]
