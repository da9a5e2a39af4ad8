"""A session's connection for tests that drive ``Session.on_frame`` without a socket: what
the session sends is kept, decoded (``out``), and nothing is ever queued."""

from __future__ import annotations

import json
from typing import Any


class RecordingConnection:
    def __init__(self) -> None:
        self.out: list[dict[str, Any]] = []

    def send(self, data: bytes) -> None:
        self.out.append(json.loads(data))

    def buffered(self) -> int:
        return 0

    def close(self, code: int, reason: str) -> None:
        pass
