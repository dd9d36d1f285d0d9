"""Properties of the masking engine, with hypothesis."""

from __future__ import annotations

import re

from hypothesis import assume, given
from hypothesis import strategies as st

from compliance.masking import Policy, Rule, card_network, find, mask
from tests.compliance.cards import NETWORKS, card_numbers, formatted, luhn_check_digit

BEFORE = st.sampled_from(
    ["", "my card is ", "Card: ", "card:", "(", "number=", "pay with ", "1.\t", "¿"]
)
AFTER = st.sampled_from(["", ".", " thanks", ")", ", exp 12/27", "!", "\nok", " ok?", ";"])
KEEP_FOUR = Policy(keep_last_four=True)
WITH_RULE = Policy(rules=(Rule("employee", re.compile(r"\bEMP-\d{4,8}\b")),))


def x_out(segment: str, keep: int = 0) -> str:
    digits_seen, out = 0, []
    total = sum(c.isdigit() for c in segment)
    for c in segment:
        if c.isdigit():
            digits_seen += 1
            out.append(c if digits_seen > total - keep else "X")
        else:
            out.append(c)
    return "".join(out)


@st.composite
def card_in_text(draw: st.DrawFn, network: str | None = None) -> tuple[str, str, str, str]:
    number = draw(card_numbers(network))
    return draw(BEFORE), draw(formatted(number)), draw(AFTER), number


@given(st.data())
def test_every_network_is_recognised(data: st.DataObject) -> None:
    for network in NETWORKS:
        number = data.draw(card_numbers(network))
        assert card_network(number), (network, number)


@given(card_in_text())
def test_any_valid_card_in_any_common_formatting_is_masked(case: tuple[str, str, str, str]) -> None:
    before, card, after, _ = case
    assert mask(before + card + after) == before + x_out(card) + after


@given(card_in_text())
def test_last_four_digits_stay_when_the_setting_is_on(case: tuple[str, str, str, str]) -> None:
    before, card, after, number = case
    masked = mask(before + card + after, KEEP_FOUR)
    assert masked == before + x_out(card, keep=4) + after
    assert number not in re.sub(r"\D", "", masked)


@given(card_numbers(), st.integers(1, 9))
def test_a_card_with_a_wrong_check_digit_is_left_alone(number: str, delta: int) -> None:
    wrong = number[:-1] + str((int(number[-1]) + delta) % 10)
    assert mask(f"order {wrong} shipped") == f"order {wrong} shipped"


@given(card_numbers(), st.sampled_from(["", "9", "12", "0"]), st.sampled_from(["", "0", "77"]))
def test_a_card_inside_a_longer_digit_run_is_left_alone(number: str, head: str, tail: str) -> None:
    assume(head or tail)
    # A run that is itself a valid card (a 16-digit Discover plus a digit can be) is one.
    assume(not card_network(head + number + tail))
    text = f"ref {head}{number}{tail} ok"
    assert mask(text) == text


@given(card_numbers(), st.sampled_from(["x", "ID", "_", "+"]))
def test_a_card_glued_to_a_word_is_left_alone(number: str, glue: str) -> None:
    assert mask(f"{glue}{number}") == f"{glue}{number}"


TOKENS = st.sampled_from([*"0123456789 -+X.x/#()\né", "EMP-", "ssn ", "4111", "123-45-"])
TEXT = st.lists(TOKENS, max_size=40).map("".join)


@given(st.lists(st.one_of(TEXT, card_in_text().map(lambda c: c[1])), max_size=6).map("".join))
def test_masking_is_idempotent(text: str) -> None:
    for policy in (Policy(), KEEP_FOUR, WITH_RULE):
        once = mask(text, policy)
        assert mask(once, policy) == once


@given(st.lists(st.one_of(TEXT, card_in_text().map(lambda c: c[1])), max_size=6).map("".join))
def test_masking_only_turns_letters_and_digits_into_x(text: str) -> None:
    masked = mask(text, WITH_RULE)
    assert len(masked) == len(text)
    assert all(a == b or (b == "X" and a.isalnum()) for a, b in zip(text, masked))


@given(st.text())
def test_text_with_fewer_than_nine_digits_is_returned_untouched(text: str) -> None:
    text = re.sub(r"[0-9]", "", text) + "12345678"
    assert mask(text) is text


@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=300))
def test_text_without_findings_is_unchanged(text: str) -> None:
    if not find(text):
        assert mask(text) == text


def test_luhn_helper_matches_known_test_cards() -> None:
    # Guards the generator itself: a broken check digit would make the tests above vacuous.
    for card in ("4111111111111111", "378282246310005", "6011111111111117", "5555555555554444"):
        assert luhn_check_digit(card[:-1]) == card[-1]


LINE = st.one_of(
    TEXT.filter(lambda t: "ssn" not in t), card_in_text().map(lambda c: c[0] + c[1] + c[2])
)


@given(st.lists(LINE.map(lambda t: t.replace("\n", " ")), min_size=8, max_size=40))
def test_long_text_is_masked_as_its_lines_are(lines: list[str]) -> None:
    # Long text goes through the per-line pre-filter; it must not change any result.
    assert mask("\n".join(lines)) == "\n".join(mask(line) for line in lines)
