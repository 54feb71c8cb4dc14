"""Unit tests are pure: no emulator, no network.

A unit test that asks for an emulator (directly, or through ``store``,
``tracker``, ``http`` or ``gcs_client``) fails at once with where it belongs,
instead of starting one.
"""

from __future__ import annotations

import pytest

MOVE = "unit tests run without emulators: move this test to tests/integration"


@pytest.fixture(scope="session")
def emulator_host() -> str:
    """Refused here (:data:`MOVE`)."""
    pytest.fail(MOVE)


@pytest.fixture(scope="session")
def gcs_url() -> str:
    """Refused here (:data:`MOVE`)."""
    pytest.fail(MOVE)
