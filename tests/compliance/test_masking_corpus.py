"""Tricky cases for the built-in detectors: what must be masked and what must survive."""

from __future__ import annotations

import pytest

from compliance.masking import Policy, find, iban_valid, mask


def iban(country: str, bban: str) -> str:
    """A valid IBAN for `bban`, printed in groups of four."""
    for check in range(100):
        compact = f"{country}{check:02d}{bban}"
        if iban_valid(compact):
            return " ".join(compact[i : i + 4] for i in range(0, len(compact), 4))
    raise AssertionError("no check digits")


# An IBAN whose account digits start with a valid Visa number: only the IBAN check saves it.
IBAN_WITH_CARD_DIGITS = iban("DE", "411111111111111111")

UNCHANGED = [
    # numbers that are not Luhn-valid, or not a network's prefix or length
    "Order 4111111111111112 has shipped",
    "order number 123456789012 placed",
    "tracking 9400111899223197428490",
    "invoice 1234-5678-9012-3456",
    "ref 7111 1111 1111 1111",
    # phone numbers
    "Call me on +1 555-123-4567",
    "(555) 123-4567",
    "555-123-4567 or 555.123.4567",
    "+44 20 7946 0958",
    "+4915123456781",  # 13 digits, Luhn-valid and Visa-shaped, but the + makes it a phone number
    "0049 1512 3456789",
    # dates and times
    "2024-01-15",
    "on 15/01/2024 at 10:30",
    "12-25-2024 and 2024-12-25 10:30:00",
    "from 2023-01-01 to 2023-12-31",
    # IBANs and other account formats
    "DE89 3704 0044 0532 0130 00",
    "GB29 NWBK 6016 1331 9268 19",
    "GB29NWBK60161331926819",
    f"please send it to {IBAN_WITH_CARD_DIGITS} THANKS",
    "1Z999AA10123456784",
    # digits inside longer runs or words
    "ref 41111111111111111111",
    "94111111111111111",
    "x4111111111111111",
    "4111111111111111abc",
    "id_4111111111111111",
    "sku-A4111111111111111",
    # separated oddly: not the way card numbers are written
    "4 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1",
    "4111  1111  1111  1111",
    "4111--1111--1111--1111",
    "4111.1111.1111.1111",
    # look like SSNs but are not
    "order 123456789",
    "000-12-3456",
    "666-12-3456",
    "923-45-6789",
    "123-00-4567",
    "123-45-0000",
    "123-45 6789",
    "zip 12345-6789",
    "1-123-45-6789",
    "ssn123-45-6789",
    # amounts and versions
    "$1,234,567.89 and 1 234 567",
    "192.168.100.200 v10.2.3",
    "",
    "no digits at all",
    "X" * 40,
]


@pytest.mark.parametrize("text", UNCHANGED)
def test_left_alone(text: str) -> None:
    assert mask(text) == text
    assert find(text) == []


MASKED = [
    ("my card 4111 1111 1111 1111 thanks", "my card XXXX XXXX XXXX XXXX thanks"),
    ("4111-1111-1111-1111", "XXXX-XXXX-XXXX-XXXX"),
    ("card:4111111111111111.", "card:XXXXXXXXXXXXXXXX."),
    ("(4111 1111 1111 1111)", "(XXXX XXXX XXXX XXXX)"),
    ('"4111111111111111",', '"XXXXXXXXXXXXXXXX",'),
    ("amex 3782 822463 10005", "amex XXXX XXXXXX XXXXX"),
    ("diners 3056 930902 5904", "diners XXXX XXXXXX XXXX"),
    ("visa13 4222 2222 2222 2", "visa13 XXXX XXXX XXXX X"),
    ("discover 6011111111111117, ok", "discover XXXXXXXXXXXXXXXX, ok"),
    ("JCB 3530111333300000", "JCB XXXXXXXXXXXXXXXX"),
    ("mc 5555555555554444 and 2223003122003222", "mc XXXXXXXXXXXXXXXX and XXXXXXXXXXXXXXXX"),
    ("unionpay 6200000000000005", "unionpay XXXXXXXXXXXXXXXX"),
    ("maestro 6759649826438453", "maestro XXXXXXXXXXXXXXXX"),
    ("Card 4111 1111 1111 1111 exp 12/25 cvv 123", "Card XXXX XXXX XXXX XXXX exp 12/25 cvv 123"),
    # typed straight on with the expiry: the card is the leading groups that make a valid number
    ("4111 1111 1111 1111 1225 123", "XXXX XXXX XXXX XXXX 1225 123"),
    ("on 2024-01-15 4111 1111 1111 1111", "on 2024-01-15 XXXX XXXX XXXX XXXX"),
    ("A1 4111 1111 1111 1111", "A1 XXXX XXXX XXXX XXXX"),
    ("-4111111111111111-", "-XXXXXXXXXXXXXXXX-"),
    ("line one\n4111111111111111\nline three", "line one\nXXXXXXXXXXXXXXXX\nline three"),
    ("Kártya: 4111 1111 1111 1111 köszönöm", "Kártya: XXXX XXXX XXXX XXXX köszönöm"),
    ("ssn 123-45-6789", "ssn XXX-XX-XXXX"),
    ("SSN: 123 45 6789.", "SSN: XXX XX XXXX."),
    ("my social security number is 123456789", "my social security number is XXXXXXXXX"),
    ("SS# 123456789", "SS# XXXXXXXXX"),
    ("it's 078-05-1120", "it's XXX-XX-XXXX"),
]


@pytest.mark.parametrize(("text", "expected"), MASKED)
def test_masked(text: str, expected: str) -> None:
    assert mask(text) == expected
    assert mask(expected) == expected


KEEP_FOUR = [
    ("4111 1111 1111 1111", "XXXX XXXX XXXX 1111"),
    ("4111111111111111", "XXXXXXXXXXXX1111"),
    ("3782 822463 10005", "XXXX XXXXXX X0005"),
    ("4222 2222 2222 2", "XXXX XXXX X222 2"),
    ("ssn 123-45-6789", "ssn XXX-XX-XXXX"),
    # The visible four cannot start a new card with the groups after them.
    ("4242 4242 4242 4242 4242 4242 4242", "XXXX XXXX XXXX XXXX XXXX XXXX 4242"),
]


@pytest.mark.parametrize(("text", "expected"), KEEP_FOUR)
def test_last_four_setting(text: str, expected: str) -> None:
    policy = Policy(keep_last_four=True)
    assert mask(text, policy) == expected
    assert mask(expected, policy) == expected


def test_detectors_can_be_switched_off() -> None:
    text = "card 4111111111111111 ssn 123-45-6789"
    assert mask(text, Policy(cards=False)) == "card 4111111111111111 ssn XXX-XX-XXXX"
    assert mask(text, Policy(ssns=False)) == "card XXXXXXXXXXXXXXXX ssn 123-45-6789"
    assert mask(text, Policy(cards=False, ssns=False)) is text


def test_a_long_transcript_is_masked_line_by_line() -> None:
    # Long text takes the per-line pre-filter; the SSN keyword may sit on the line before.
    lines = [f"agent: line {i} of the chat, order #{i}" for i in range(60)]
    lines[30] = "visitor: 4111 1111 1111 1111"
    lines[45] = "visitor: my SSN is"
    lines[46] = "123456789"
    masked = mask("\n".join(lines)).split("\n")
    assert masked[30] == "visitor: XXXX XXXX XXXX XXXX"
    assert masked[46] == "XXXXXXXXX"
    assert [m for i, m in enumerate(masked) if i not in (30, 46)] == [
        line for i, line in enumerate(lines) if i not in (30, 46)
    ]


def test_lone_surrogates_do_not_break_the_pre_filter() -> None:
    assert mask("\ud800 4111111111111111") == "\ud800 XXXXXXXXXXXXXXXX"
