"""Every send in these tests publishes its images where they answer (env_for passes the
address on to the processes it starts)."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _media(published_media: str) -> None:
    pass
