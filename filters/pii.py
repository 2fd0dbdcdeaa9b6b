"""Find and replace personal data: e-mail addresses, phone numbers, IP addresses, payment card numbers.

Precision matters more than recall here: a false positive silently corrupts good text (a date,
a version string, a price), while a missed number is one number. So every detector is a cheap
regex for candidates followed by a real check:
- phone numbers: candidates need separators, parentheses or a leading '+', never look like a
  date, and must be *valid* numbers for their region by Google's libphonenumber (`phonenumbers`),
  which knows each country's numbering plan; a bare run of digits (an id, a quantity) is not a candidate;
- IP addresses: validated by `ipaddress`; by default only public addresses are replaced, because
  127.0.0.1, 192.168.0.1 and documentation ranges identify nobody and fill technical text;
- payment cards: 13-19 digits with consistent grouping, a known issuer prefix, and the Luhn checksum.
Overlaps are resolved by type priority (e-mail, card, IP, phone), so "+1 4111 1111 1111 1111" is a card.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from typing import Iterable

PII_TYPES = ("email", "credit_card", "ip_address", "phone")
PLACEHOLDERS = {"email": "<EMAIL>", "credit_card": "<CREDIT_CARD>", "ip_address": "<IP_ADDRESS>", "phone": "<PHONE>"}

# Each pattern starts with a character class, so the regex engine can skip ahead to candidates;
# the look-behind placed after that first character keeps matches off the middle of a longer token.
EMAIL = re.compile(r"[A-Za-z0-9](?<![\w.%+-][A-Za-z0-9])[A-Za-z0-9._%+-]*@(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?\.)+[A-Za-z]{2,24}\b")
IPV4 = re.compile(r"\d(?<![\w.]\d)\d{0,2}(?:\.\d{1,3}){3}(?!\w|\.\d)")
IPV6 = re.compile(r"(?<![\w:.])(?=[0-9A-Fa-f:]*:[0-9A-Fa-f]*:)[0-9A-Fa-f:]{2,39}(?![\w:])")
CARD = re.compile(r"\d(?<![\d.-]\d)\d{3}(?:([ -]?)\d{4}\1\d{4}\1\d{1,7}|[ -]\d{6}[ -]\d{5})(?!\d|[.,]\d)")
# digits, parentheses and single separators ( .-) between digits: "+1 (650) 253-0000"
PHONE = re.compile(r"[+(\d](?<![\w+.-][+(\d])(?:[\d()]|[ .-](?=[\d(])){5,24}\d(?![\w-]|[.,]\d)")
DATE_LIKE = re.compile(r"(?<!\d)(?:\d{4}[-./]\d{1,2}[-./]\d{1,2}|\d{1,2}[-./]\d{1,2}[-./](?:\d{4}|\d{2}$))(?!\d)")
VERSION_BEFORE = re.compile(r"(?:version|ver\.|v\.?|release|build)\s*$", re.IGNORECASE)

# Issuer prefixes (IIN ranges) of the major card networks, with their lengths.
CARD_ISSUERS = (
    (re.compile(r"^4"), (13, 16, 19)),  # Visa
    (re.compile(r"^(?:5[1-5]|2(?:2[2-9]|[3-6]\d|7[01]|720))"), (16,)),  # Mastercard
    (re.compile(r"^3[47]"), (15,)),  # American Express
    (re.compile(r"^(?:6011|65|64[4-9])"), (16, 19)),  # Discover
    (re.compile(r"^35(?:2[89]|[3-8]\d)"), (16, 19)),  # JCB
    (re.compile(r"^3(?:0[0-5]|[68])"), (14, 16, 19)),  # Diners Club
    (re.compile(r"^62"), (16, 17, 18, 19)),  # UnionPay
)


def luhn_valid(digits: str) -> bool:
    """The Luhn (mod 10) checksum every payment card number carries in its last digit."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def is_card_number(candidate: str) -> bool:
    digits = re.sub(r"[ -]", "", candidate)
    if not 13 <= len(digits) <= 19 or len(set(digits)) == 1:
        return False
    return luhn_valid(digits) and any(p.match(digits) and len(digits) in lengths for p, lengths in CARD_ISSUERS)


def is_reportable_ip(candidate: str, public_only: bool) -> bool:
    try:
        ip = ipaddress.ip_address(candidate)
    except ValueError:
        return False
    return ip.is_global if public_only else not ip.is_unspecified


@dataclass
class PiiRedactor:
    """Replace PII in text with placeholders and count what was replaced, per type."""

    types: Iterable[str] = PII_TYPES
    placeholders: dict[str, str] = field(default_factory=lambda: dict(PLACEHOLDERS))
    phone_region: str = "US"
    public_ips_only: bool = True

    def __post_init__(self):
        unknown = set(self.types) - set(PII_TYPES)
        if unknown:
            raise ValueError(f"unknown PII type {', '.join(sorted(unknown))} (known: {', '.join(PII_TYPES)})")
        self.types = tuple(t for t in PII_TYPES if t in set(self.types))
        if "phone" in self.types:
            import phonenumbers

            self._phonenumbers = phonenumbers

    def find(self, text: str) -> list[tuple[int, int, str]]:
        """Non-overlapping (start, end, type) spans, earlier types in PII_TYPES winning overlaps."""
        spans: list[tuple[int, int, str]] = []
        taken: list[tuple[int, int]] = []
        for kind in self.types:
            for start, end in getattr(self, f"_{kind}")(text):
                if not any(start < e and s < end for s, e in taken):
                    spans.append((start, end, kind))
                    taken.append((start, end))
        return sorted(spans)

    def redact(self, text: str) -> tuple[str, dict[str, int]]:
        """(text with placeholders, count of replacements per type)."""
        counts = dict.fromkeys(self.types, 0)
        if not text:
            return text, counts
        spans = self.find(text)
        if not spans:
            return text, counts
        out, pos = [], 0
        for start, end, kind in spans:
            out += (text[pos:start], self.placeholders[kind])
            pos = end
            counts[kind] += 1
        out.append(text[pos:])
        return "".join(out), counts

    def _email(self, text: str):
        if "@" in text:
            yield from (m.span() for m in EMAIL.finditer(text))

    def _credit_card(self, text: str):
        for m in CARD.finditer(text):
            if is_card_number(m.group()):
                yield m.span()

    def _ip_address(self, text: str):
        if "." in text:
            for m in IPV4.finditer(text):
                after_version = VERSION_BEFORE.search(text, max(0, m.start() - 12), m.start())
                if not after_version and is_reportable_ip(m.group(), self.public_ips_only):
                    yield m.span()
        if "::" in text or text.count(":") > 2:
            for m in IPV6.finditer(text):
                if is_reportable_ip(m.group(), self.public_ips_only):
                    yield m.span()

    def _phone(self, text: str):
        phonenumbers = self._phonenumbers
        for m in PHONE.finditer(text):
            candidate = m.group()
            digits = sum(ch.isdigit() for ch in candidate)
            if not 7 <= digits <= 15 or DATE_LIKE.search(candidate):
                continue
            try:
                number = phonenumbers.parse(candidate, self.phone_region)
            except phonenumbers.NumberParseException:
                continue
            if phonenumbers.is_valid_number(number):
                yield m.span()
