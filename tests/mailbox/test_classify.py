"""Every format in the corpus (tests/data/mailbox, written from RFC 3464 and RFC 5965 and
from the published formats of Postfix, Gmail, Exchange, qmail, Exim, Yahoo and
Microsoft's JMRP) gets its expected classification."""

from __future__ import annotations

from pathlib import Path

import pytest

from newsletter.mailbox.classify import classify

CORPUS = Path(__file__).resolve().parent.parent / "data" / "mailbox"
ROWS = [
    line.split("\t")
    for line in (CORPUS / "corpus.tsv").read_text().splitlines()
    if line and not line.startswith("#")
]


def test_every_file_in_the_corpus_has_an_expectation() -> None:
    files = {p.name for p in CORPUS.glob("*.eml")}
    assert files == {row[0] for row in ROWS}
    assert len(files) >= 15


@pytest.mark.parametrize("row", ROWS, ids=lambda row: row[0])
def test_the_corpus_is_classified_as_expected(row: list[str]) -> None:
    name, kind, recipient, status, hard = row
    found = classify((CORPUS / name).read_bytes(), unsubscribe_address="unsubscribe@example.org")
    assert found.kind == kind
    assert (found.recipient or "-") == recipient
    assert (found.status or "-") == status
    assert found.hard == (hard == "yes")


def test_a_returned_copy_gives_our_headers() -> None:
    found = classify(
        (CORPUS / "gmail-dsn-failure.eml").read_bytes(), unsubscribe_address="u@example.org"
    )
    assert (found.campaign, found.subscriber) == ("campaign-1", "7")
    found = classify(
        (CORPUS / "arf-yahoo-complaint.eml").read_bytes(), unsubscribe_address="u@example.org"
    )
    assert (found.campaign, found.subscriber) == ("campaign-1", "7")


def test_a_mailto_unsubscribe_carries_its_token() -> None:
    found = classify(
        (CORPUS / "mailto-unsubscribe.eml").read_bytes(),
        unsubscribe_address="unsubscribe@example.org",
    )
    assert found.token == "MS5jMS4xNjIyNDUxMjAw.AbCdEfGhIjKlMnOpQrStUv"


def test_damaged_messages_never_raise() -> None:
    import random

    rng = random.Random(3464)
    for path in sorted(CORPUS.glob("*.eml")):
        raw = path.read_bytes()
        for _ in range(40):
            cut = raw[: rng.randrange(len(raw) + 1)]
            mutated = bytearray(cut)
            for _ in range(rng.randrange(8)):
                if mutated:
                    mutated[rng.randrange(len(mutated))] = rng.randrange(256)
            found = classify(bytes(mutated), unsubscribe_address="unsubscribe@example.org")
            assert found.kind in {
                "bounce",
                "delayed",
                "complaint",
                "unsubscribe",
                "autoreply",
                "unrecognised",
            }
