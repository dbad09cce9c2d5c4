"""The address fast path agrees with email-validator wherever it decides."""

from __future__ import annotations

import pytest
from email_validator import validate_email
from hypothesis import given, settings
from hypothesis import strategies as st

from newsletter.audience.addresses import FAST_ADDRESS, _fast, address_key, normalize_address


@settings(max_examples=400, deadline=None)
@given(st.from_regex(FAST_ADDRESS, fullmatch=True))
def test_fast_path_is_a_subset_of_email_validator(address: str) -> None:
    fast = _fast(address)
    if fast is not None:
        assert validate_email(address, check_deliverability=False).normalized == fast


ALPHABET = st.sampled_from([*"abcXYZ09.-_+@", "..", "@@", "é", " ", "xn--", "localhost", "test"])


@settings(max_examples=400, deadline=None)
@given(st.lists(ALPHABET, min_size=1, max_size=20).map("".join))
def test_near_misses_agree_with_email_validator(candidate: str) -> None:
    fast = _fast(candidate)
    if fast is not None:
        assert validate_email(candidate, check_deliverability=False).normalized == fast


@pytest.mark.parametrize(
    ("raw", "normal"),
    [
        ("Ana@Example.COM", "Ana@example.com"),
        ("  bo@example.org ", "bo@example.org"),
        ("Postmaster@Example.com", "postmaster@example.com"),
        ("josé@exämple.com", "josé@exämple.com"),
    ],
)
def test_normal_forms(raw: str, normal: str) -> None:
    assert normalize_address(raw) == normal


@pytest.mark.parametrize(
    "raw", ["", "no-at", "a@b", "a..b@example.com", "a@example.test", "a b@x.com"]
)
def test_invalid_addresses(raw: str) -> None:
    with pytest.raises(ValueError):
        normalize_address(raw)


def test_key_ignores_case() -> None:
    assert address_key(normalize_address("Ana@Example.com")) == address_key(
        normalize_address("ana@EXAMPLE.com")
    )


@pytest.mark.parametrize(
    ("raw", "normal"),
    [
        ("ana@example.com", "ana@example.com"),
        ("Ana.Perez+news@Mail.Example.ORG", "Ana.Perez+news@mail.example.org"),
        ("o'brien@example.co.uk", "o'brien@example.co.uk"),
        ("x_y-z@sub-domain.example.com", "x_y-z@sub-domain.example.com"),
    ],
)
def test_common_addresses_take_the_fast_path(raw: str, normal: str) -> None:
    # The fast path exists for speed: the common shapes must be decided by it, and decided
    # exactly as email-validator would.
    assert _fast(raw) == normal
    assert validate_email(raw, check_deliverability=False).normalized == normal


@pytest.mark.parametrize(
    "raw",
    [
        "postmaster@example.com",  # case-insensitive mailbox names are normalised
        "a@example.test",  # special-use domains
        "a@xn--bcher-kva.example",  # punycode labels
        "josé@example.com",  # not ASCII
        "a@localhost",
    ],
)
def test_uncommon_addresses_are_left_to_email_validator(raw: str) -> None:
    assert _fast(raw) is None


@pytest.mark.parametrize("raw", ["x=?y@example.com", "=?utf-8?q?a?=@example.com"])
def test_addresses_that_cannot_go_into_a_header_are_refused(raw: str) -> None:
    with pytest.raises(ValueError, match="encoded header"):
        normalize_address(raw)
