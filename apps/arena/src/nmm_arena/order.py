"""A keyed shuffle of 0..n-1 computed one position at a time: each session's order of pairs.

A four-round Feistel network over the smallest even-bit domain that holds n, with cycle-walking
back into range: a bijection, so position -> pair and pair -> position both cost O(1) (expected
fewer than four walks), whatever the number of pairs, and nothing per session is stored.
"""

from __future__ import annotations

import hashlib

ROUNDS = 4


class KeyedOrder:
    """A permutation of range(n) chosen by `key`."""

    def __init__(self, n: int, key: bytes) -> None:
        if n < 1:
            raise ValueError("an order needs at least one item")
        self.n = n
        self._half = max(1, ((n - 1).bit_length() + 1) // 2)
        self._mask = (1 << self._half) - 1
        self._keys = [hashlib.blake2b(key, digest_size=32, person=b"order%d" % r).digest() for r in range(ROUNDS)]

    def _f(self, r: int, value: int) -> int:
        digest = hashlib.blake2b(value.to_bytes(8, "little"), key=self._keys[r], digest_size=8).digest()
        return int.from_bytes(digest, "little") & self._mask

    def _forward(self, x: int) -> int:
        left, right = x >> self._half, x & self._mask
        for r in range(ROUNDS):
            left, right = right, left ^ self._f(r, right)
        return (left << self._half) | right

    def _backward(self, y: int) -> int:
        left, right = y >> self._half, y & self._mask
        for r in reversed(range(ROUNDS)):
            left, right = right ^ self._f(r, left), left
        return (left << self._half) | right

    def __getitem__(self, position: int) -> int:
        """The item at `position`."""
        if not 0 <= position < self.n:
            raise IndexError(position)
        x = self._forward(position)
        while x >= self.n:  # cycle-walking: stays a bijection on range(n)
            x = self._forward(x)
        return x

    def position(self, item: int) -> int:
        """Where `item` comes in this order (the inverse)."""
        if not 0 <= item < self.n:
            raise IndexError(item)
        x = self._backward(item)
        while x >= self.n:
            x = self._backward(x)
        return x
