"""Symbols and their numbers: decimals at the edge, exact integers inside (contract section 6).

A symbol has a tick (the price step) and a lot (the quantity step). A price in is a positive
multiple of the tick and becomes a count of ticks; a quantity a positive multiple of the lot and
becomes a count of lots. Out, a count is written back as the exact shortest decimal, never with an
exponent and never through a float.

>>> btc = Symbol.parse("BTC-USDT:0.01:0.0001")
>>> btc.ticks("100.5"), btc.lots(0.0003)
(10050, 3)
>>> btc.price_text(10050), btc.quantity_text(3), btc.price_text(10000)
('100.5', '0.0003', '100')
>>> btc.ticks("100.505")
Traceback (most recent call last):
...
exchange._symbols.NumberError: price 100.505 is not a multiple of the tick 0.01
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from fractions import Fraction

DEFAULT_SYMBOLS = "BTC-USDT:0.01:0.0001,ETH-USDT:0.01:0.001,SOL-USDT:0.001:0.01"
MAX_DIGITS = 24
MIN_EXPONENT = -30
"""A number in is at most 24 digits before its point and 30 after (``1e999999999`` is refused
before it is ever expanded)."""
MAX_UNITS = 2**62
"""The largest count of ticks or lots taken: far beyond any real price or size, and it keeps
every sum of quantities inside 64 bits, so the journal's fixed-width fields always hold them."""


class NumberError(ValueError):
    """A price or quantity that is not a number, not positive, or off its step."""


def to_decimal(value: object, what: str) -> Decimal:
    """A JSON number (int, float, Decimal) or decimal string as an exact Decimal.

    A float is taken by its shortest repr, which is the text the sender wrote.
    """
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal | str):
        raise NumberError(f"{what} must be a number or a decimal string, not {value!r}")
    try:
        number = Decimal(repr(value) if isinstance(value, float) else value)
    except InvalidOperation:
        raise NumberError(f"{what} {value!r} is not a decimal number") from None
    if not number.is_finite():
        raise NumberError(f"{what} {value!r} is not a finite number")
    return number


def scaled_text(units: int, coefficient: int, exponent: int) -> str:
    """``units * coefficient * 10**exponent`` as exact shortest decimal text, by integers only.

    >>> scaled_text(10050, 1, -2), scaled_text(3, 1, -4), scaled_text(7, 5, 1)
    ('100.5', '0.0003', '350')
    >>> scaled_text(0, 1, -2)
    '0'
    """
    n = units * coefficient
    sign = "-" if n < 0 else ""
    digits = str(abs(n))
    if exponent >= 0:
        return sign + digits + "0" * exponent if n else "0"
    digits = digits.rjust(1 - exponent, "0")
    whole, frac = digits[:exponent], digits[exponent:].rstrip("0")
    return sign + (f"{whole}.{frac}" if frac else whole)


def decimal_text(value: Fraction | Decimal) -> str:
    """The exact shortest decimal text of a value that has one, without exponent.

    >>> decimal_text(Decimal("1.2300")), decimal_text(Decimal("1E+2")), decimal_text(Fraction(1, 8))
    ('1.23', '100', '0.125')
    """
    number = Fraction(value)
    exponent = 0
    while number.denominator != 1:  # a decimal's denominator is 2**a * 5**b
        number *= 10
        exponent -= 1
    return scaled_text(number.numerator, 1, exponent)


def _scaled(step: Decimal) -> tuple[int, int]:
    _, digits, exponent = step.as_tuple()
    return int("".join(map(str, digits))), int(exponent)


@dataclass(frozen=True)
class Symbol:
    """One tradable symbol: its name, tick and lot (positive decimals)."""

    name: str
    tick: Decimal
    lot: Decimal
    _tick: Fraction = field(init=False, repr=False, compare=False)
    _lot: Fraction = field(init=False, repr=False, compare=False)
    _tick_scale: tuple[int, int] = field(init=False, repr=False, compare=False)
    _lot_scale: tuple[int, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_tick", Fraction(self.tick))
        object.__setattr__(self, "_lot", Fraction(self.lot))
        object.__setattr__(self, "_tick_scale", _scaled(self.tick))  # for the texts out
        object.__setattr__(self, "_lot_scale", _scaled(self.lot))

    @classmethod
    def parse(cls, spec: str) -> Symbol:
        """``name:tick:lot``, e.g. ``BTC-USDT:0.01:0.0001``; ValueError saying what is wrong."""
        parts = spec.strip().split(":")
        if len(parts) != 3 or not parts[0]:
            raise ValueError(f"{spec!r} is not symbol:tick:lot")
        name, tick_text, lot_text = parts
        if not all(c.isalnum() or c in "-_./" for c in name):
            raise ValueError(f"symbol {name!r} may hold only letters, digits and - _ . /")
        steps = []
        for what, text in (("tick", tick_text), ("lot", lot_text)):
            try:
                step = to_decimal(text, what)
            except NumberError as e:
                raise ValueError(f"symbol {name}: {e}") from None
            if step <= 0:
                raise ValueError(f"symbol {name}: {what} must be positive, not {text}")
            steps.append(step)
        return cls(name, steps[0], steps[1])

    def _units(self, value: object, step: Fraction, what: str, step_name: str) -> int:
        number = to_decimal(value, what)
        sign, digits, exponent = number.as_tuple()
        mantissa = int("".join(map(str, digits))) if digits else 0
        if sign or not mantissa:
            raise NumberError(f"{what} must be positive, not {value}")
        if not MIN_EXPONENT <= exponent <= MAX_DIGITS - len(digits):  # type: ignore[operator]
            raise NumberError(f"{what} {value} is out of range (at most {MAX_DIGITS} digits "
                              f"before the point and {-MIN_EXPONENT} after)")  # fmt: skip
        # number / step with integers only: mantissa * 10**exponent * den / num.
        top, bottom = mantissa * step.denominator, step.numerator
        if exponent >= 0:  # type: ignore[operator]  # a finite Decimal's exponent is an int
            top *= 10**exponent  # type: ignore[operator]
        else:
            bottom *= 10**-exponent  # type: ignore[operator]
        units, rest = divmod(top, bottom)
        if rest:
            raise NumberError(
                f"{what} {decimal_text(number)} is not a multiple of the {step_name} "
                f"{decimal_text(step)}"
            )
        if units > MAX_UNITS:
            raise NumberError(f"{what} {decimal_text(number)} is too large")
        return units

    def ticks(self, price: object) -> int:
        """A price as a count of ticks (NumberError when it is not a positive multiple)."""
        return self._units(price, self._tick, "price", "tick")

    def lots(self, quantity: object) -> int:
        """A quantity as a count of lots (NumberError when it is not a positive multiple)."""
        return self._units(quantity, self._lot, "quantity", "lot")

    def price_text(self, ticks: int) -> str:
        """A count of ticks as the price's exact decimal text."""
        return scaled_text(ticks, *self._tick_scale)

    def quantity_text(self, lots: int) -> str:
        """A count of lots as the quantity's exact decimal text."""
        return scaled_text(lots, *self._lot_scale)

    @property
    def spec(self) -> str:
        return f"{self.name}:{decimal_text(self.tick)}:{decimal_text(self.lot)}"


def parse_symbols(text: str) -> dict[str, Symbol]:
    """``--symbols``: ``name:tick:lot,...`` in order; ValueError naming what is wrong.

    >>> list(parse_symbols(DEFAULT_SYMBOLS))
    ['BTC-USDT', 'ETH-USDT', 'SOL-USDT']
    """
    symbols: dict[str, Symbol] = {}
    for spec in text.split(","):
        symbol = Symbol.parse(spec)
        if symbol.name in symbols:
            raise ValueError(f"symbol {symbol.name} is given twice")
        symbols[symbol.name] = symbol
    return symbols
