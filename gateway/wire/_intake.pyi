from typing import Any

PLACE: int
CANCEL: int

def plain_order(frame: object, markets: dict[str, Any]) -> tuple[Any, ...] | None: ...
