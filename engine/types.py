"""Small integer enumerations shared by the books, the exchange and the wire codec.

They are ``IntEnum`` so that the Cython core can take them as plain C integers while
Python code reads ``Side.BUY`` rather than ``0``.  The numbers are part of the compact
batch format (see ``engine.batch``): never renumber a member.
"""

from enum import IntEnum
from typing import Literal


class Side(IntEnum):
    BUY = 0
    SELL = 1

    @property
    def opposite(self) -> "Side":
        return Side.SELL if self is Side.BUY else Side.BUY


class OrderType(IntEnum):
    LIMIT = 0
    MARKET = 1


class TimeInForce(IntEnum):
    GTC = 0  # good till canceled: the rest of a limit order rests on the book
    IOC = 1  # immediate or cancel: the unfilled rest expires
    FOK = 2  # fill or kill: fills completely at once, or expires with no effect at all


class SelfTradePrevention(IntEnum):
    """What happens when an incoming order would trade with a resting order of the same owner.

    The incoming (taker) order's mode decides, as on the large crypto venues.
    """

    NONE = 0  # the two orders trade (only for flows that have no owners, e.g. benchmarks)
    CANCEL_NEWEST = 1  # the incoming order's rest is canceled, the resting order stays
    CANCEL_OLDEST = 2  # the resting order is canceled and matching goes on
    CANCEL_BOTH = 3  # both are canceled


# Indexed by Side and by liquidity (0 maker, 1 taker); typed as literals so an indexed name
# is the events' Literal type, not any str.
SIDE_NAMES: tuple[Literal["buy"], Literal["sell"]] = ("buy", "sell")
LIQUIDITY_NAMES: tuple[Literal["maker"], Literal["taker"]] = ("maker", "taker")
