"""The wire messages the workers read, as typed msgspec decoders that keep only the
fields the bench reads (the rest of a message is skipped, not built): a bot's responses
(``decode_response``, ``decode_batch_response``) and a subscriber's messages
(``decode_message``).  Decoding is per message on the machine the server runs on, so it is
kept cheap.
"""

from __future__ import annotations

from typing import Any

import msgspec


class _Error(msgspec.Struct):
    code: str = ""


class Result(msgspec.Struct):
    order_id: int = 0
    status: str = ""
    filled_qty: str = ""


class _Response(msgspec.Struct):
    id: int | str | None = None
    ok: bool = False
    result: Result | list[Any] | None = None
    error: _Error | None = None


class _BatchItem(msgspec.Struct):
    """One order's outcome in an ``order.batch`` or ``order.cancel_batch`` response."""

    ok: bool = False
    result: Result | None = None
    error: _Error | None = None


class _BatchResponse(msgspec.Struct):
    """The response to an ``order.batch`` or ``order.cancel_batch``: one item per order, in
    order (or, if the request as a whole was refused, an error)."""

    id: int | str | None = None
    ok: bool = False
    result: list[_BatchItem] | None = None
    error: _Error | None = None


class StreamData(msgspec.Struct):
    type: str = ""


class _Item(msgspec.Struct):
    """An element of a list in ``data`` (a trade): only counted, so no field is kept."""


class Message(msgspec.Struct):
    """A subscriber's message: a response (``id``) or a stream message (``channel``).
    ``data`` is an object (a book message, or one trade) or a list (the trades of a batch).
    A book update covers the book's changes ``first_seq`` to ``seq``; without ``first_seq``
    it is one change, ``seq``."""

    id: int | str | None = None
    ok: bool | None = None
    channel: str = ""
    first_seq: int | None = None
    seq: int = -1
    data: StreamData | list[_Item] | None = None


decode_response = msgspec.json.Decoder(_Response).decode


decode_batch_response = msgspec.json.Decoder(_BatchResponse).decode


decode_message = msgspec.json.Decoder(Message).decode
