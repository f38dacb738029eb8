"""Content-Type parsing and Accept negotiation (RFC 9110 media ranges with q-values).

Results are cached per header value: a busy endpoint sees the same few header strings over and over.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from .errors import BadRequest, NotAcceptable

__all__ = ["CSV", "JSON", "NPY", "MediaType", "negotiate", "parse_accept", "parse_media_type", "preferred"]

JSON = "application/json"
CSV = "text/csv"
NPY = "application/x-npy"


@dataclass(frozen=True, slots=True)
class MediaType:
    """A media type without parameters (lower case, e.g. ``text/csv``) and its parameters."""

    essence: str
    params: tuple[tuple[str, str], ...] = ()

    def param(self, name: str, default: str | None = None) -> str | None:
        for key, value in self.params:
            if key == name:
                return value
        return default


def _split_params(value: str) -> tuple[str, list[tuple[str, str]]]:
    head, *rest = value.split(";")
    params: list[tuple[str, str]] = []
    for item in rest:
        key, sep, val = item.partition("=")
        key = key.strip().lower()
        if not key:
            continue
        if not sep:
            raise ValueError(f"parameter {item.strip()!r} has no value")
        params.append((key, val.strip().strip('"')))
    return head.strip().lower(), params


@lru_cache(maxsize=256)
def parse_media_type(value: str) -> MediaType:
    """Parse a Content-Type header value. Raises `BadRequest` when it is not ``type/subtype[; k=v]*``."""
    try:
        essence, params = _split_params(value)
    except ValueError as exc:
        raise BadRequest(f"malformed Content-Type {value[:100]!r}: {exc}") from None
    kind, sep, sub = essence.partition("/")
    if not sep or not kind or not sub or "*" in essence or " " in essence:
        raise BadRequest(f"malformed Content-Type {value[:100]!r}: expected type/subtype")
    return MediaType(essence, tuple(params))


@dataclass(frozen=True, slots=True)
class _Range:
    essence: str
    q: float
    order: int

    @property
    def specificity(self) -> int:
        if self.essence == "*/*":
            return 0
        return 1 if self.essence.endswith("/*") else 2

    def matches(self, offer: str) -> bool:
        if self.essence == "*/*":
            return True
        if self.essence.endswith("/*"):
            return offer.startswith(self.essence[:-1])
        return offer == self.essence


@lru_cache(maxsize=256)
def parse_accept(value: str) -> tuple[_Range, ...]:
    """Parse an Accept header into media ranges, most preferred first. Raises `BadRequest` if malformed."""
    ranges: list[_Range] = []
    for order, item in enumerate(value.split(",")):
        if not item.strip():
            continue
        try:
            essence, params = _split_params(item)
        except ValueError as exc:
            raise BadRequest(f"malformed Accept {value[:100]!r}: {exc}") from None
        if essence.count("/") != 1 or essence.startswith("/") or essence.endswith("/"):
            raise BadRequest(f"malformed Accept {value[:100]!r}: {essence!r} is not type/subtype")
        q = 1.0
        for key, raw in params:
            if key == "q":
                try:
                    q = float(raw)
                except ValueError:
                    raise BadRequest(f"malformed Accept {value[:100]!r}: q={raw!r} is not a number") from None
                if not 0.0 <= q <= 1.0:
                    raise BadRequest(f"malformed Accept {value[:100]!r}: q={raw} must be between 0 and 1")
        ranges.append(_Range(essence, q, order))
    return tuple(sorted(ranges, key=lambda r: (-r.q, -r.specificity, r.order)))


def _match(ranges: tuple[_Range, ...], offer: str) -> tuple[float, int, int]:
    """(q, specificity, -order) of the most specific range matching `offer` (RFC 9110, section 12.5.1)."""
    best: _Range | None = None
    for rng in ranges:
        if rng.matches(offer) and (best is None or rng.specificity > best.specificity):
            best = rng
    return (best.q, best.specificity, -best.order) if best else (0.0, 0, 0)


@lru_cache(maxsize=512)
def negotiate(accept: str | None, offers: tuple[str, ...], default: str) -> str:
    """Choose the response type among `offers`: `default` when Accept is missing or empty; otherwise the offer
    with the highest q, then the most specific matching range (``text/csv`` beats ``*/*``), then the range
    listed first, then `default`, then the order of `offers`. Raises `NotAcceptable` naming what is
    available."""
    if accept is None or not accept.strip():
        return default
    ranges = parse_accept(accept)
    scored = []
    for index, offer in enumerate(offers):
        q, specificity, order = _match(ranges, offer)
        if q > 0:
            scored.append((q, specificity, order, offer == default, -index, offer))
    if not scored:
        raise NotAcceptable(f"cannot produce any of Accept {accept[:200]!r}; available: {', '.join(offers)}")
    return max(scored)[-1]


def preferred(accept: str | None, default: str) -> str:
    """The single media type to hand a user ``output_fn``: Accept itself when it names one concrete type,
    `default` for a missing Accept or ``*/*``, else the concrete type with the highest q."""
    if accept is None or not accept.strip():
        return default
    ranges = [r for r in parse_accept(accept) if r.q > 0]
    if not ranges:
        raise NotAcceptable(f"Accept {accept[:200]!r} accepts nothing")
    for rng in ranges:
        if rng.specificity == 2:
            return rng.essence
    return default
