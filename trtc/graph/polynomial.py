"""Integer polynomials in dimension symbols (`3072*N`): shapes and costs under dynamic dimensions,
with the interval each takes over the symbols' bounds."""

from __future__ import annotations

from dataclasses import dataclass
from math import prod

import numpy as np

Monomial = tuple[str, ...]  # sorted symbol names; () is the constant term
Bounds = dict[str, tuple[int, int]]


@dataclass(frozen=True)
class Poly:
    """An integer polynomial in dimension symbols."""

    terms: tuple[tuple[Monomial, int], ...]  # sorted, no zero coefficients

    @staticmethod
    def of(mapping: dict[Monomial, int]) -> Poly:
        return Poly(tuple(sorted((m, c) for m, c in mapping.items() if c != 0)))

    @staticmethod
    def constant(value: int) -> Poly:
        return Poly.of({(): int(value)})

    @staticmethod
    def symbol(name: str) -> Poly:
        return Poly.of({(name,): 1})

    def __add__(self, other: Poly | int) -> Poly:
        other = _lift(other)
        total = dict(self.terms)
        for monomial, coefficient in other.terms:
            total[monomial] = total.get(monomial, 0) + coefficient
        return Poly.of(total)

    def __neg__(self) -> Poly:
        return Poly(tuple((m, -c) for m, c in self.terms))

    def __sub__(self, other: Poly | int) -> Poly:
        return self + (-_lift(other))

    def __rsub__(self, other: int) -> Poly:
        return _lift(other) - self

    def __mul__(self, other: Poly | int) -> Poly:
        other = _lift(other)
        total: dict[Monomial, int] = {}
        for m1, c1 in self.terms:
            for m2, c2 in other.terms:
                monomial = tuple(sorted(m1 + m2))
                total[monomial] = total.get(monomial, 0) + c1 * c2
        return Poly.of(total)

    __radd__ = __add__
    __rmul__ = __mul__

    def __floordiv__(self, divisor: int) -> Poly:
        quotient = self.exact_division(int(divisor))
        if quotient is None:
            raise ValueError(f"{self} is not a multiple of {divisor}")
        return quotient

    def at(self, values: dict[str, int]) -> int:
        """The value with every symbol replaced by `values` (missing ones by 1)."""
        return sum(c * prod(values.get(name, 1) for name in m) for m, c in self.terms)

    def exact_division(self, divisor: int) -> Poly | None:
        if divisor == 0 or any(c % divisor for _, c in self.terms):
            return None
        return Poly(tuple((m, c // divisor) for m, c in self.terms))

    @property
    def value(self) -> int | None:
        """The value when the polynomial is a constant."""
        if not self.terms:
            return 0
        return self.terms[0][1] if len(self.terms) == 1 and self.terms[0][0] == () else None

    def interval(self, bounds: Bounds) -> tuple[int, int]:
        low = high = 0
        for monomial, coefficient in self.terms:
            term_low = term_high = coefficient
            for name in monomial:
                lo, hi = bounds[name]
                corners = (term_low * lo, term_low * hi, term_high * lo, term_high * hi)
                term_low, term_high = min(corners), max(corners)
            low, high = low + term_low, high + term_high
        return low, high

    def __str__(self) -> str:
        if not self.terms:
            return "0"
        parts = []
        for monomial, coefficient in self.terms:
            factors = "*".join(monomial)
            if not factors:
                parts.append(str(coefficient))
            else:
                parts.append(
                    factors if coefficient == 1 else f"-{factors}" if coefficient == -1 else f"{coefficient}*{factors}"
                )
        return " + ".join(parts).replace("+ -", "- ")


def _lift(value: Poly | int) -> Poly:
    if isinstance(value, Poly):
        return value
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return Poly.constant(int(value))
    raise TypeError(f"cannot combine a shape polynomial with {type(value).__name__}")
