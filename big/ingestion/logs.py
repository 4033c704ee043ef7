"""The model's output in the ingestion log: echoed up to a cap, then only its tail."""
from __future__ import annotations

import collections
import threading


class CappedEcho(threading.Thread):
    """Drains the worker's stdout+stderr pipe: echoes the first ``head`` bytes, keeps the last ``tail``."""

    def __init__(self, stream, sink, head: int, tail: int, prefix: str = "model| "):
        super().__init__(daemon=True)
        self.stream, self.sink, self.head, self.tail, self.prefix = stream, sink, head, tail, prefix
        self.total = 0
        self.echoed = 0
        self._tail = collections.deque()
        self._tail_len = 0
        self._at_line_start = True
        self._recent = b""

    def _emit(self, data: bytes) -> None:
        text = data.decode("utf-8", "replace")
        out = []
        for piece in text.splitlines(keepends=True):
            if self._at_line_start:
                out.append(self.prefix)
            out.append(piece)
            self._at_line_start = piece.endswith("\n")
        try:
            self.sink.write("".join(out))
            self.sink.flush()
        except (OSError, ValueError):
            pass

    def run(self) -> None:
        while True:
            try:
                block = self.stream.read1(1 << 16) if hasattr(self.stream, "read1") else self.stream.read(1 << 16)
            except (OSError, ValueError):
                break
            if not block:
                break
            self.total += len(block)
            self._recent = (self._recent + block)[-4096:]
            room = self.head - self.echoed
            if room > 0:
                self._emit(block[:room])
                self.echoed += min(room, len(block))
                block = block[room:]
            if block:
                self._tail.append(block)
                self._tail_len += len(block)
                while self._tail and self._tail_len - len(self._tail[0]) >= self.tail:
                    self._tail_len -= len(self._tail.popleft())

    def tail_text(self) -> bytes:
        data = b"".join(self._tail)
        return data[-self.tail:] if self.tail else b""

    def finish(self) -> None:
        self.join(timeout=5)
        omitted = self.total - self.echoed - len(self.tail_text())
        if omitted > 0:
            self._at_line_start = True
            self._emit(f"[... {omitted:,} bytes of model output omitted ...]\n".encode())
        rest = self.tail_text()
        if rest:
            self._emit(rest)
        if not self._at_line_start:
            self._emit(b"\n")

    def last_lines(self, n: int = 15) -> str:
        """The model's last output lines (for a crash message), whether or not they were echoed."""
        lines = self._recent.decode("utf-8", "replace").splitlines()
        return "\n".join(line[-300:] for line in lines[-n:])


def _cap(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    half = limit // 2
    return text[:half] + f"\n[... {len(text) - limit} characters omitted ...]\n" + text[-half:]
