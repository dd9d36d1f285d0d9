"""Masking of card numbers, US Social Security numbers and administrator-defined patterns.

Pure Python with no imports from other apps, so every app (chat, exports, e-mail, the archive)
may call it. `mask(text, policy)` replaces the letters and digits of every finding with `X` and
keeps separators, so "4111-1111-1111-1111" becomes "XXXX-XXXX-XXXX-XXXX".

What counts as a card number: 13 to 19 digits, either in one run or in groups separated by a
single space or dash (every group but the last has at least 3 digits, so lists like
"56 57 58 59 60 61 62" are left alone), whose prefix and length belong to a known network and
which pass the Luhn check. A card is made of whole groups, so a digit run is never split, but it
may be the leading groups of a longer chain ("4111 1111 1111 1111 1225 123", typed straight on
with the expiry and code). Groups glued to a letter, `_` or a leading `+` (phone numbers) are
not the start or end of a card, and groups that are part of a valid IBAN are left alone.

What counts as an SSN: AAA-GG-SSSS or AAA GG SSSS (one kind of separator), area not 000, 666 or
9xx, group not 00, serial not 0000, and the chain of digit groups is exactly those three. Nine
digits without separators count only when "SSN", "SS#", "social security" or "soc sec" comes
shortly before: most nine-digit numbers in chat are order, account or tracking numbers.

Only ASCII digits are recognised (the chat pipeline does not NFKC-normalise, so full-width
digits pass through unmasked).
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from itertools import accumulate

# --- Card networks ---------------------------------------------------------------------------

# (network, lowest prefix, highest prefix, allowed lengths). Prefixes of one row have the same
# number of digits, so comparing the first len(lo) digits as strings is a range check.
_ANY = frozenset(range(13, 20))
_16_19 = frozenset(range(16, 20))
_14_19 = frozenset(range(14, 20))
NETWORKS: tuple[tuple[str, str, str, frozenset[int]], ...] = (
    ("visa", "4", "4", frozenset({13, 16, 19})),
    ("mastercard", "51", "55", frozenset({16})),
    ("mastercard", "2221", "2720", frozenset({16})),
    ("amex", "34", "34", frozenset({15})),
    ("amex", "37", "37", frozenset({15})),
    ("discover", "6011", "6011", _16_19),
    ("discover", "644", "649", _16_19),
    ("discover", "65", "65", _16_19),
    ("discover", "622126", "622925", _16_19),
    ("jcb", "3528", "3589", _16_19),
    ("diners", "300", "305", _14_19),
    ("diners", "3095", "3095", _14_19),
    ("diners", "36", "36", _14_19),
    ("diners", "38", "39", _16_19),
    ("unionpay", "62", "62", _16_19),
    ("unionpay", "81", "81", _16_19),
    ("maestro", "5018", "5018", _ANY),
    ("maestro", "5020", "5020", _ANY),
    ("maestro", "5038", "5038", _ANY),
    ("maestro", "5893", "5893", _ANY),
    ("maestro", "6304", "6304", _ANY),
    ("maestro", "6759", "6759", _ANY),
    ("maestro", "6761", "6763", _ANY),
)
CARD_MIN_DIGITS = 13
CARD_MAX_DIGITS = 19
SSN_DIGITS = 9

_DOUBLED = (0, 2, 4, 6, 8, 1, 3, 5, 7, 9)


def luhn_valid(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        total += _DOUBLED[d] if i & 1 else d
    return total % 10 == 0


# Rows by first digit, so most numbers that are not cards are turned away by one lookup.
_NETWORKS_BY_FIRST_DIGIT = {
    d: tuple(row for row in NETWORKS if row[1][0] == d) for d in "0123456789"
}


def card_network(digits: str) -> str | None:
    """The network of a Luhn-valid card number of a plausible length, else None."""
    n = len(digits)
    for name, lo, hi, lengths in _NETWORKS_BY_FIRST_DIGIT.get(digits[:1], ()):
        if n in lengths and lo <= digits[: len(lo)] <= hi:
            return name if luhn_valid(digits) else None
    return None


def ssn_valid(area: str, group: str, serial: str) -> bool:
    return area != "000" and area != "666" and area[0] != "9" and group != "00" and serial != "0000"


# --- Policy ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rule:
    """An administrator-defined pattern; every letter and digit it matches becomes X."""

    name: str
    pattern: re.Pattern[str]


@dataclass(frozen=True)
class Policy:
    cards: bool = True
    ssns: bool = True
    keep_last_four: bool = False
    rules: tuple[Rule, ...] = field(default=())
    # Fewest digits any enabled built-in detector needs: the pre-filter's threshold.
    min_digits: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        needed = SSN_DIGITS if self.ssns else CARD_MIN_DIGITS if self.cards else 1 << 62
        object.__setattr__(self, "min_digits", needed)


DEFAULT_POLICY = Policy()


@dataclass(frozen=True)
class Finding:
    kind: str  # "card", "ssn" or "rule:<name>"
    start: int
    end: int


# --- Scanning ---------------------------------------------------------------------------------

# Every byte that is not an ASCII digit; deleting them with bytes.translate counts digits at
# about 1 GB/s, which is what makes the common case (a message with few digits) cheap.
_NON_DIGITS = bytes(b for b in range(256) if not 0x30 <= b <= 0x39)
_NON_DIGITS_NL = _NON_DIGITS.replace(b"\n", b"")
# A chain of digit groups joined by single spaces or dashes with at least 9 digits in all.
# Leftmost-greedy matching makes every hit a maximal chain.
_CHAIN = re.compile(r"[0-9](?:[ -]?[0-9]){8,}")
_GROUP = re.compile(r"[0-9]+")
_SSN_CONTEXT = re.compile(r"(?i)\b(?:ssns?\b|ss\s*#|social[\s-]+security\b|soc\.?\s*sec\b)")
_SSN_CONTEXT_WINDOW = 40
# IBANs as printed (groups of four, single spaces) or compact; only for telling them from cards.
_IBAN = re.compile(r"\b[A-Z]{2}[0-9]{2}(?: ?[A-Z0-9]{4})+(?: ?[A-Z0-9]{1,3})?\b")
_IBAN_CHUNK = re.compile(r" ?[A-Z0-9]{1,4}")
_SEPARATORS = re.compile(r"[ -]")
_ALNUM = re.compile(r"[^\W_]")


def digit_count(text: str) -> int:
    # surrogatepass: JSON can hand us lone surrogates; their bytes are not digits anyway.
    return len(text.encode("utf-8", "surrogatepass").translate(None, _NON_DIGITS))


def iban_valid(compact: str) -> bool:
    if not 15 <= len(compact) <= 34:
        return False
    moved = compact[4:] + compact[:4]
    return int("".join(str(int(c, 36)) for c in moved)) % 97 == 1


def _iban_spans(text: str, start: int, end: int) -> list[tuple[int, int]]:
    """Valid IBANs (mod-97 check) near text[start:end]; their digits are not cards."""
    spans = []
    for m in _IBAN.finditer(text, max(0, start - 40), min(len(text), end + 40)):
        # The shape can swallow a following word in capitals ("... 0130 00 THANKS"), so try
        # ending the IBAN at each earlier chunk too, longest first.
        cuts = [c.end() for c in _IBAN_CHUNK.finditer(text, m.start() + 4, m.end())]
        for cut in reversed(cuts):
            if iban_valid(_SEPARATORS.sub("", text[m.start() : cut])):
                spans.append((m.start(), cut))
                break
    return spans


def _cards_in_chain(
    text: str, groups: list[tuple[int, int]], first_ok: bool, last_ok: bool
) -> list[Finding]:
    """Cards made of whole groups of one chain, leftmost-longest first."""
    found: list[Finding] = []
    ibans: list[tuple[int, int]] | None = None
    n = len(groups)
    i = 0 if first_ok else 1
    last = n - 1 if last_ok else n - 2
    while i <= last:
        hit = None
        digits = 0
        for j in range(i, last + 1):
            if j > i and groups[j - 1][1] - groups[j - 1][0] < 3:
                break  # a short group can only be the last one of a card
            digits += groups[j][1] - groups[j][0]
            if digits > CARD_MAX_DIGITS:
                break
            if digits >= CARD_MIN_DIGITS:
                number = _SEPARATORS.sub("", text[groups[i][0] : groups[j][1]])
                if card_network(number):
                    hit = j
        if hit is None:
            i += 1
            continue
        start, end = groups[i][0], groups[hit][1]
        if ibans is None:
            ibans = _iban_spans(text, start, end)
        if not any(s < end and start < e for s, e in ibans):
            found.append(Finding("card", start, end))
        i = hit + 1
    return found


def _ssn_in_chain(text: str, groups: list[tuple[int, int]], start: int, end: int) -> Finding | None:
    sizes = [e - s for s, e in groups]
    if sizes == [3, 2, 4]:
        if text[groups[0][1]] != text[groups[1][1]]:
            return None  # "123-45 6789" mixes separators: not the way SSNs are written
        parts = [text[s:e] for s, e in groups]
        return Finding("ssn", start, end) if ssn_valid(*parts) else None
    if sizes == [SSN_DIGITS]:
        raw = text[start:end]
        if ssn_valid(raw[:3], raw[3:5], raw[5:]) and _SSN_CONTEXT.search(
            text, max(0, start - _SSN_CONTEXT_WINDOW), start
        ):
            return Finding("ssn", start, end)
    return None


def _candidate_lines(text: str, min_digits: int) -> list[tuple[int, int]]:
    """(start, end) of the lines with enough digits for a finding.

    No finding crosses a line break (separators are a space or a dash), and on long text the
    chain regex scans at only about 100 MB/s, so the digits of each line are counted first:
    deleting everything but digits and newlines leaves a short byte string to split. UTF-8
    never uses the byte 0x0A inside a multi-byte character, so its lines are the text's lines.
    """
    if len(text) < _SPLIT_ABOVE:
        return [(0, len(text))]
    digits = text.encode("utf-8", "surrogatepass").translate(None, _NON_DIGITS_NL).split(b"\n")
    wanted = [i for i, run in enumerate(digits) if len(run) >= min_digits]
    if not wanted:
        return []
    lines = text.split("\n")
    starts = list(accumulate((len(line) + 1 for line in lines), initial=0))
    return [(starts[i], starts[i] + len(lines[i])) for i in wanted]


_SPLIT_ABOVE = 256
# Characters that glue a digit chain to its neighbour: then it is part of a word, a longer
# number or (a leading +) a phone number, not a card or SSN of its own.
_GLUE_BEFORE = "_+"
_GLUE_AFTER = "_"


def _builtin_findings(text: str, policy: Policy) -> list[Finding]:
    found: list[Finding] = []
    size = len(text)
    for line_start, line_end in _candidate_lines(text, policy.min_digits):
        for m in _CHAIN.finditer(text, line_start, line_end):
            start, end = m.span()
            width = end - start
            # Cheap rejects first, as most chains are phone, order or tracking numbers.
            digits = width - text.count(" ", start, end) - text.count("-", start, end)
            cards = policy.cards and digits >= CARD_MIN_DIGITS
            ssns = policy.ssns and digits == SSN_DIGITS and (width == 9 or width == 11)
            if not (cards or ssns):
                continue
            before = text[start - 1] if start else " "
            after = text[end] if end < size else " "
            first_ok = not (before.isalnum() or before in _GLUE_BEFORE)
            last_ok = not (after.isalnum() or after in _GLUE_AFTER)
            if digits == width:  # one unbroken run: a card only if it is all of it
                if cards and first_ok and last_ok and card_network(text[start:end]):
                    found.append(Finding("card", start, end))
                    continue
                groups = [(start, end)]
            else:
                groups = [g.span() for g in _GROUP.finditer(text, start, end)]
                if cards:
                    found.extend(_cards_in_chain(text, groups, first_ok, last_ok))
            if ssns and first_ok and last_ok:
                ssn = _ssn_in_chain(text, groups, start, end)
                if ssn:
                    found.append(ssn)
    return found


def _findings(text: str, policy: Policy, digits: int) -> list[Finding]:
    found = _builtin_findings(text, policy) if digits >= policy.min_digits else []
    for rule in policy.rules:
        found.extend(
            Finding(f"rule:{rule.name}", m.start(), m.end())
            for m in rule.pattern.finditer(text)
            if m.end() > m.start()
        )
    if len(found) > 1:
        found.sort(key=lambda f: (f.start, f.end))
    return found


def find(text: str, policy: Policy = DEFAULT_POLICY) -> list[Finding]:
    """What one pass of `mask` would cover, for previews and tests."""
    return _findings(text, policy, digit_count(text))


# --- Masking ---------------------------------------------------------------------------------


def _mask_segment(segment: str, keep_last: int) -> str:
    if keep_last:
        # Walk back over keep_last digits; separators between them stay visible too.
        seen, cut = 0, len(segment)
        while cut > 0 and seen < keep_last:
            cut -= 1
            if segment[cut].isdigit():
                seen += 1
        return _ALNUM.sub("X", segment[:cut]) + segment[cut:]
    return _ALNUM.sub("X", segment)


def _apply(text: str, findings: Iterable[Finding], keep_last_four: bool) -> str:
    out: list[str] = []
    pos = 0
    for f in findings:
        start = max(f.start, pos)  # overlapping findings: the earlier one already covered it
        if f.end <= start:
            continue
        keep = 4 if (keep_last_four and f.kind == "card") else 0
        out.append(text[pos:start])
        out.append(_mask_segment(text[start : f.end], keep))
        pos = f.end
    if not out:
        return text
    out.append(text[pos:])
    return "".join(out)


# Each pass that changes the text turns at least one character into X, so repeating until
# nothing changes terminates; the cap bounds the work on hostile input.
_MAX_PASSES = 8


def mask(text: str, policy: Policy = DEFAULT_POLICY) -> str:
    """Mask `text`; idempotent: mask(mask(t)) == mask(t).

    Masking can expose a new match (the four digits kept visible after one card followed by
    more digit groups, or an administrator pattern that matches next to an X), so it repeats
    until a pass changes nothing. Text without findings is returned as the same object.
    """
    # The common case, kept to a few C calls because per-call overhead dominates on short
    # messages: too few digits for any built-in detector and no administrator rules.
    digits = len(text.encode("utf-8", "surrogatepass").translate(None, _NON_DIGITS))
    if digits < policy.min_digits and not policy.rules:
        return text
    for _ in range(_MAX_PASSES):
        findings = _findings(text, policy, digits)
        if not findings:
            return text
        masked = _apply(text, findings, policy.keep_last_four)
        if masked == text:
            return text
        text = masked
        digits = digit_count(text)
    return text


# --- Checking administrator patterns -------------------------------------------------------


class UnsafePattern(ValueError):
    pass


# Python's `re` cannot be interrupted, so a pattern is judged by running it on probes: runs of
# one character it could repeat over, ended by one that makes the match fail late. The runs grow
# in small steps (+2 while short, where exponential backtracking shows; then about x1.4, where
# polynomial backtracking shows), so the probe that crosses the budget costs at most a few times
# the budget. A pattern within budget whose time still grows faster than the input between 1024
# and 4096 characters (a chat message's length limit) is refused too. Times are the thread's
# CPU time, so a busy machine does not fail a good pattern.
PROBE_BUDGET_SECONDS = 0.1
_RUNS = (*range(8, 33, 2), 48, 64, 96, 128, 192, 256, 384, 512, 768, 1024, 1536, 2048, 3072, 4096)
_SUPERLINEAR_FLOOR_SECONDS = 0.005
_PROBE_CHARS = "a0 -.X@"
_MAX_PROBE_CHARS = 12


def _probe_seconds(compiled: re.Pattern[str], text: str) -> float:
    began = time.thread_time()
    for _ in compiled.finditer(text):
        pass
    return time.thread_time() - began


def compile_rule_pattern(pattern: str) -> re.Pattern[str]:
    """Compile an administrator's pattern, refusing one that is invalid, can match empty text
    (nothing to mask) or backtracks badly enough that one message could stall the pipeline."""
    if not pattern.strip():
        raise UnsafePattern("The pattern is empty.")
    try:
        compiled = re.compile(pattern)
    except re.error as exc:
        raise UnsafePattern(f"Not a valid regular expression: {exc}.") from exc
    mentioned = "".join(c for c in pattern if c.isalnum())
    chars = list(dict.fromkeys(_PROBE_CHARS + mentioned))[:_MAX_PROBE_CHARS]
    for ch in ("", *chars):
        if any(m.end() == m.start() for m in compiled.finditer(ch * 2 + "!")):
            raise UnsafePattern(
                "The pattern can match empty text; it must match at least one character."
            )
    slow = (
        "The pattern is too slow on a run of {n} {ch!r} characters: repetitions that can split the "
        "same text in many ways, such as (a+)+ or \\w+\\w+, backtrack badly. Bound them, e.g. "
        "\\w{{1,64}} instead of \\w+."
    )
    for ch in chars:
        seconds: dict[int, float] = {}
        for n in _RUNS:
            seconds[n] = _probe_seconds(compiled, ch * n + "!")
            if seconds[n] > PROBE_BUDGET_SECONDS:
                raise UnsafePattern(slow.format(n=n, ch=ch))
        # Linear time would grow 4-fold from 1024 to 4096 characters; quadratic grows 16-fold.
        if seconds[4096] > _SUPERLINEAR_FLOOR_SECONDS and seconds[4096] > 8 * seconds[1024]:
            raise UnsafePattern(slow.format(n=4096, ch=ch))
    return compiled
