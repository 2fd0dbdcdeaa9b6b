"""PII detection: what must be replaced, what must be left alone (dates, versions, ordinary numbers)."""

from __future__ import annotations

import pytest

from filters.pii import PLACEHOLDERS, PiiRedactor, is_card_number, luhn_valid

REDACTOR = PiiRedactor()


@pytest.mark.parametrize(
    "text,kind,value",
    [
        ("Write to john.doe@example.co.uk today.", "email", "john.doe@example.co.uk"),
        ("Contact: a_b+tag@mail-server.example.org", "email", "a_b+tag@mail-server.example.org"),
        ("Call (650) 253-0000 now.", "phone", "(650) 253-0000"),
        ("Call 650.253.0000.", "phone", "650.253.0000"),
        ("Our office: +44 20 7946 0958.", "phone", "+44 20 7946 0958"),
        ("Tel +49 30 1234567 or", "phone", "+49 30 1234567"),
        ("Tel +4930123456.", "phone", "+4930123456"),
        ("The server 8.8.8.8 answered.", "ip_address", "8.8.8.8"),
        ("From 151.101.1.69, then", "ip_address", "151.101.1.69"),
        ("Resolve 2001:4860:4860::8888 first.", "ip_address", "2001:4860:4860::8888"),
        ("Visa 4111 1111 1111 1111 expires", "credit_card", "4111 1111 1111 1111"),
        ("Card 5555-5555-5555-4444.", "credit_card", "5555-5555-5555-4444"),
        ("Amex 3782 822463 10005 ok", "credit_card", "3782 822463 10005"),
        ("Discover 6011111111111117.", "credit_card", "6011111111111117"),
    ],
)
def test_pii_is_replaced_and_counted(text, kind, value):
    redacted, counts = REDACTOR.redact(text)
    assert redacted == text.replace(value, PLACEHOLDERS[kind])
    assert counts == {t: int(t == kind) for t in counts}


@pytest.mark.parametrize(
    "text",
    [
        "The meeting is on 2024-01-15 at 10:30.",
        "Am 15.01.2024 um 10:30 Uhr.",
        "Released 12/31/2023, see version 1.2.3.4 or v2.0.0.1.",
        "Install python 3.11.7 and numpy 1.26.4.",
        "Local hosts 127.0.0.1, 192.168.0.1, 10.0.0.8 and ::1 are fine.",
        "Documentation uses 192.0.2.1 and 2001:db8::1.",
        "Population 1 500 000, budget 2.500.000 EUR, area 357,592 km2.",
        "Scores were 12 15 18 20 22 in order.",
        "ISBN 978-3-16-148410-0 and order 12345-678-90.",
        "Card 4111 1111 1111 1112 fails its checksum.",
        "Digits 0000 0000 0000 0000 are a placeholder.",
        "Pi is 3.14159265358979 and e is 2.718281828.",
        "In C++ std::vector<int> v; a::b::c and time 12:30:45.",
        "Follow @handle on social media, or email at example dot com.",
        "Unix time 1700000000 and id 9876543210.",
    ],
)
def test_ordinary_text_is_left_alone(text):
    assert REDACTOR.redact(text) == (text, {t: 0 for t in REDACTOR.types})


@pytest.mark.parametrize(
    "digits,valid",
    [("4111111111111111", True), ("4111111111111112", False), ("79927398713", True), ("79927398710", False), ("0", True)],
)
def test_luhn(digits, valid):
    assert luhn_valid(digits) is valid


def test_card_needs_luhn_and_an_issuer_prefix():
    assert is_card_number("4012888888881881")
    assert not is_card_number("4012888888881882")  # Luhn fails
    assert luhn_valid("9111111111111110") and not is_card_number("9111111111111110")  # no issuer starts with 9


def test_several_of_each_in_one_text_and_overlaps_prefer_the_card():
    text = "a@b.io, c@d.io; 8.8.8.8 and 1.1.1.1; card +1 4111 1111 1111 1111"
    redacted, counts = REDACTOR.redact(text)
    assert counts == {"email": 2, "credit_card": 1, "ip_address": 2, "phone": 0}
    assert redacted == "<EMAIL>, <EMAIL>; <IP_ADDRESS> and <IP_ADDRESS>; card +1 <CREDIT_CARD>"


def test_neighbouring_phone_numbers_stay_apart():
    text = "Call +1 (650) 253-0000 - or 650 253 0001, 650.253.0002."
    assert REDACTOR.redact(text) == ("Call <PHONE> - or <PHONE>, <PHONE>.", {"email": 0, "credit_card": 0, "ip_address": 0, "phone": 3})


def test_options_types_placeholders_private_ips_and_region():
    only_email = PiiRedactor(types=["email"], placeholders={"email": "[mail]"})
    assert only_email.redact("x@y.com 8.8.8.8") == ("[mail] 8.8.8.8", {"email": 1})
    assert PiiRedactor(public_ips_only=False).redact("host 192.168.0.1")[0] == "host <IP_ADDRESS>"
    assert PiiRedactor().redact("Ruf 030 1234567 an")[1]["phone"] == 0
    assert PiiRedactor(phone_region="DE").redact("Ruf 030 1234567 an")[0] == "Ruf <PHONE> an"
    with pytest.raises(ValueError, match="unknown PII type"):
        PiiRedactor(types=["ssn"])
