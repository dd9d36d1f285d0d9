"""Test cards: Luhn-valid numbers of each network, written out from the networks' published
prefix ranges independently of compliance.masking's table."""

from __future__ import annotations

from hypothesis import strategies as st

# network: ([(lowest prefix, highest prefix)], allowed lengths within 13..19)
NETWORKS: dict[str, tuple[list[tuple[int, int]], list[int]]] = {
    "visa": ([(4, 4)], [13, 16, 19]),
    "mastercard": ([(51, 55), (2221, 2720)], [16]),
    "amex": ([(34, 34), (37, 37)], [15]),
    "discover": ([(6011, 6011), (644, 649), (65, 65), (622126, 622925)], [16, 17, 18, 19]),
    "jcb": ([(3528, 3589)], [16, 17, 18, 19]),
    "diners": ([(300, 305), (36, 36)], [14, 15, 16, 17, 18, 19]),
    "unionpay": ([(62, 62)], [16, 17, 18, 19]),
    "maestro": (
        [
            (5018, 5018),
            (5020, 5020),
            (5038, 5038),
            (5893, 5893),
            (6304, 6304),
            (6759, 6759),
            (6761, 6763),
        ],
        [13, 16, 19],
    ),
}


def luhn_check_digit(body: str) -> str:
    total = 0
    for i, ch in enumerate(reversed(body)):
        d = int(ch)
        if i % 2 == 0:  # doubled once the check digit is appended
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return str((10 - total % 10) % 10)


def make_card(prefix: str, length: int, middle: str) -> str:
    body = (prefix + middle)[: length - 1].ljust(length - 1, "0")
    return body + luhn_check_digit(body)


@st.composite
def card_numbers(draw: st.DrawFn, network: str | None = None) -> str:
    name = network or draw(st.sampled_from(sorted(NETWORKS)))
    ranges, lengths = NETWORKS[name]
    lo, hi = draw(st.sampled_from(ranges))
    prefix = str(draw(st.integers(lo, hi)))
    length = draw(st.sampled_from(lengths))
    middle = draw(st.text(alphabet="0123456789", min_size=length, max_size=length))
    return make_card(prefix, length, middle)


@st.composite
def formatted(draw: st.DrawFn, number: str) -> str:
    """The number as people type it: plain, in fours, 4-6-5 like Amex, or any groups of 3 to 6."""
    style = draw(st.sampled_from(["plain", "fours", "amex", "groups"]))
    if style == "plain":
        return number
    if style == "fours":
        sizes = [4] * (len(number) // 4) + ([len(number) % 4] if len(number) % 4 else [])
    elif style == "amex":
        sizes = [4, 6, len(number) - 10]
    else:
        sizes = []
        while sum(sizes) < len(number):
            sizes.append(draw(st.integers(3, 6)))
        sizes[-1] -= sum(sizes) - len(number)
        if sizes[-1] == 0:
            sizes.pop()
    groups, pos = [], 0
    for size in sizes:
        groups.append(number[pos : pos + size])
        pos += size
    out = groups[0]
    for group in groups[1:]:
        out += draw(st.sampled_from([" ", "-"])) + group
    return out
