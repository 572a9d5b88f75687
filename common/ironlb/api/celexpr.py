"""CEL expressions for IP address ranges, built in Python because Kubernetes' CEL has no ``let``/``cel.bind``.

Kubernetes' CEL knows ``isIP``/``ip()``/``isCIDR``/``cidr()`` but cannot order two addresses, and the API
server refuses rules whose *estimated* cost is too high (string functions on the elements of ``split()``
results or of ``map()`` results count as unbounded). So a reversed range is found with CIDR containment only:
``start < end`` exactly when, at the first bit ``k`` where they differ, ``start`` has a 0 — that is, ``start``
lies in ``end``'s /k network but not its /k+1 network, and ``start``'s /k network address lies in ``start``'s
own /k+1 network. The prefix lengths come from a literal list ``'k/k+1'`` (a literal list's strings have a
known size, so the estimate stays bounded). Every ``split()`` carries a literal limit for the same reason.
"""

from __future__ import annotations


def range_start(value: str) -> str:
    return f"{value}.split('-', 2)[0].trim()"


def range_end(value: str) -> str:
    return f"{value}.split('-', 2)[1].trim()"


def is_range(value: str) -> str:
    """``start-end`` with two valid IP addresses (families not yet compared)."""
    start, end = range_start(value), range_end(value)
    return f"(!isCIDR({value}) && size({value}.split('-', 3)) == 2 && isIP({start}) && isIP({end}))"


def _prefix_steps(bits: int) -> str:
    return "[" + ", ".join(f"'{k}/{k + 1}'" for k in range(bits)) + "]"


def ordered_range(value: str) -> str:
    """True when the range's start is not after its end (callers guard with ``is_range`` and same family)."""
    start, end = range_start(value), range_end(value)
    shorter, longer = "'/' + k.split('/', 2)[0]", "'/' + k.split('/', 2)[1]"
    first_difference_is_start_zero = (
        f"cidr({end} + {shorter}).containsIP({start}) && !cidr({end} + {longer}).containsIP({start})"
        f" && cidr({start} + {longer}).containsIP(cidr({start} + {shorter}).masked().ip())"
    )
    steps = f"(ip({start}).family() == 4 ? {_prefix_steps(32)} : {_prefix_steps(128)})"
    return f"({start} == {end} || {steps}.exists(k, {first_difference_is_start_zero}))"
