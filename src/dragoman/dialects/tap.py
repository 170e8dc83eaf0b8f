"""The shared half of a stream tap: what every dialect's tap keeps while a same-dialect stream passes.

`feed` only keeps the chunk: a pass-through stream costs one list append per chunk. The scans (marker
counts, end markers, a noted marker's excerpt) run over whole buffers, at C speed, when the kept bytes
outgrow `KEEP` (then all but roughly the last `TAIL` bytes are scanned and dropped) and at the end.
A dialect's tap says which markers matter and reads the kept head and tail at `finish` (where the
usage-bearing events are). Markers never hold a newline, and buffers are cut at line boundaries,
so no marker is split by a cut (a single line longer than `KEEP` is the exception).
"""

from __future__ import annotations

from dragoman.dialects.base import Tally

HEAD = 16 * 1024  # Anthropic's message_start (input usage) is in the first bytes
TAIL = 64 * 1024  # usage, finish reasons and Responses' final event are in the last ones
KEEP = TAIL + 32 * 1024  # kept bytes before the older ones are scanned and dropped
NOTE = 512  # bytes kept from where the noted marker was first seen


class ByteTap:
    __slots__ = (
        "_chunks",
        "_count_markers",
        "_counts",
        "_data",
        "_dropped",
        "_end_markers",
        "_ended",
        "_head",
        "_note",
        "_noted",
        "_settled",
        "_size",
        "_spaced",
        "_torn",
        "style",
    )

    def __init__(
        self,
        end_markers: tuple[bytes, ...],
        count_markers: tuple[bytes, ...] = (),
        note: bytes | None = None,
        spaced: tuple[bytes, ...] | None = None,
    ) -> None:
        self._end_markers = end_markers
        self._count_markers = count_markers
        # `count_markers` written in the other JSON style (`"key": "value"`): only the style of the
        # stream, read off its first object, is counted (one pass over the bytes instead of two)
        self._spaced = spaced
        self._note = note
        self._noted: bytes | None = None
        self._chunks: list[bytes] = []
        self._size = 0
        self._counts = 0
        self._ended = False
        self._head: bytes | None = None  # set when the first bytes are dropped
        self._dropped = False
        self._torn = False  # the kept bytes start inside a line
        self._settled = False
        self._data = b""
        # the count markers of the stream's JSON style, once read off its first object (both
        # styles' when there was no telling)
        self.style: tuple[bytes, ...] | None = None

    def feed(self, chunk: bytes) -> None:
        self._chunks.append(chunk)
        self._size += len(chunk)
        if self._size > KEEP:
            self._drop()

    def _drop(self) -> None:
        data = b"".join(self._chunks)
        if self._head is None:
            self._head = data[:HEAD]
        keep_from = len(data) - TAIL
        cut = data.rfind(b"\n", 0, keep_from) + 1
        torn = cut == 0 or keep_from - cut > TAIL  # one huge line: cut inside it
        if torn:
            cut = keep_from
        self._scan(data, cut)
        self._chunks = [data[cut:]]
        self._size = len(data) - cut
        self._dropped = True
        self._torn = torn

    def _scan(self, data: bytes, end: int) -> None:
        if self._spaced is not None:
            self._count_markers = self.style = styled(data, self._count_markers, self._spaced)
            self._spaced = None
        whole = end == len(data)  # (searches without bounds skip parsing two more arguments)
        for marker in self._count_markers:
            self._counts += data.count(marker) if whole else data.count(marker, 0, end)
        if not self._ended:  # from the end: that is where an end marker is
            for marker in self._end_markers:
                if (data.rfind(marker) if whole else data.rfind(marker, 0, end)) >= 0:
                    self._ended = True
                    break
        if self._note is not None and self._noted is None:
            at = data.find(self._note)
            if at >= 0:
                self._noted = data[at : at + NOTE]

    def _settle(self) -> bytes:
        """The kept bytes, scanned once (the stream is over: nothing is fed after this)."""
        if self._settled:
            return self._data
        chunks = self._chunks
        data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        self._settled = True
        self._data = data
        self._chunks = [data]
        self._scan(data, len(data))
        return data

    @property
    def ended(self) -> bool:
        """An end marker was seen (read once the stream is over)."""
        self._settle()
        return self._ended

    @property
    def counted(self) -> int:
        """How many times the count markers appeared (read once the stream is over)."""
        self._settle()
        return self._counts

    @property
    def noted(self) -> bytes | None:
        """The bytes from where the noted marker was first seen."""
        self._settle()
        return self._noted

    def head(self) -> bytes:
        data = self._settle()
        return self._head if self._head is not None else data

    def tail(self) -> bytes:
        """The kept tail, starting at a line boundary."""
        data = self._settle()
        if self._torn:
            cut = data.find(b"\n")
            data = data[cut + 1 :] if cut >= 0 else b""
        return data

    def raw_tail(self) -> bytes:
        """The kept tail as it is, maybe starting inside a line (for finding a field in a cut event)."""
        return self._settle()

    def whole(self) -> bytes | None:
        """Every byte, when the stream was small enough to keep in one piece."""
        data = self._settle()
        return None if self._dropped else data


class EndTap:
    """A tap for a stream whose usage nobody reads (no sink): whether it reached its end, which is
    all the exchange itself needs (a stream cut short ends with an error event). Past `KEEP` bytes,
    the kept ones are searched and all but a marker's length of them dropped (no marker is split)."""

    __slots__ = ("_chunks", "_ended", "_markers", "_size")

    def __init__(self, end_markers: tuple[bytes, ...]) -> None:
        self._markers = end_markers
        self._chunks: list[bytes] = []
        self._size = 0
        self._ended = False

    def feed(self, chunk: bytes) -> None:
        self._chunks.append(chunk)
        self._size += len(chunk)
        if self._size > KEEP:
            data = b"".join(self._chunks)
            self._ended = self._ended or self._found(data)
            keep = data[-max(map(len, self._markers)) :]
            self._chunks = [keep]
            self._size = len(keep)

    def _found(self, data: bytes) -> bool:
        # from the end, where an end marker is (any() over a generator would cost a frame)
        for marker in self._markers:  # noqa: SIM110
            if data.rfind(marker) >= 0:
                return True
        return False

    def ended(self) -> bool:
        if not self._ended:
            chunks = self._chunks
            self._ended = self._found(chunks[0] if len(chunks) == 1 else b"".join(chunks))
            self._chunks = []  # (read once: nothing is fed after the stream is over)
        return self._ended

    def finish(self) -> Tally:
        return Tally(ended=self.ended())


def line_at(data: bytes, at: int) -> tuple[int, int]:
    """Where the line holding byte `at` starts and ends (its newline, or the end of `data`)."""
    end = data.find(b"\n", at)
    return data.rfind(b"\n", 0, at) + 1, end if end >= 0 else len(data)


def payload(line: bytes) -> bytes | None:
    """What an SSE `data:` line carries (None for any other line)."""
    if line[:5] != b"data:":
        return None
    return line[6:] if line[5:6] == b" " else line[5:]


def lines_with(data: bytes, *markers: bytes) -> list[bytes]:
    """The lines of `data` holding any of `markers`, in order, without their line ends: the few
    events a tap reads, found by searching for the markers (C-speed byte scans), so that the rest of
    a stream is never split, framed or decoded."""
    found: dict[int, bytes] = {}  # line start -> line
    for marker in markers:
        at = data.find(marker)
        while at >= 0:
            start, end = line_at(data, at)
            if start not in found:
                found[start] = data[start:end].rstrip(b"\r")
            at = data.find(marker, end)
    return [found[k] for k in sorted(found)]


def styled(data: bytes, compact: tuple[bytes, ...], spaced: tuple[bytes, ...]) -> tuple[bytes, ...]:
    """The markers of the JSON style the first object in `data` is written in (both when there is
    no telling): the first `":` ends its first key, and a space follows it or not."""
    brace = data.find(b"{")
    at = data.find(b'":', brace + 1) if brace >= 0 else -1
    if at < 0:
        return compact + spaced
    return spaced if data[at + 2 : at + 3] == b" " else compact


WINDOW = 2048  # the last bytes of a stream, where its report and finish are in every stream seen


def last_lines(data: bytes, size: int = WINDOW) -> bytes:
    """The whole lines within the last `size` bytes of `data` (all of it when it is shorter): what a
    tap searches first, so that a long stream's tail is scanned once per marker only when its end
    did not hold what the tap looks for."""
    if len(data) <= size:
        return data
    return data[data.find(b"\n", len(data) - size) + 1 :]


def first_data_line(data: bytes, marker: bytes) -> bytes | None:
    """The payload of the first SSE `data:` line holding `marker` (searching no further)."""
    at = data.find(marker)
    while at >= 0:
        start, end = line_at(data, at)
        found = payload(data[start:end].rstrip(b"\r"))
        if found is not None:
            return found
        at = data.find(marker, end)
    return None


def data_lines(data: bytes, *markers: bytes) -> list[bytes]:
    """The payloads of the SSE `data:` lines holding any of `markers`, in stream order."""
    return [p for p in map(payload, lines_with(data, *markers)) if p is not None]
