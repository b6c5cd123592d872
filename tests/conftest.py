"""Shared test set-up: hypothesis budgets and the path to third-party vectors."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

# CI runs a bounded budget; TRIPLE_RATCHET_FUZZ=long runs the long fuzz campaign locally.
settings.register_profile(
    "default", deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile(
    "long", max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile("long" if os.environ.get("TRIPLE_RATCHET_FUZZ") == "long" else "default")

REPO = Path(__file__).resolve().parents[1]
SHARED_VECTORS = REPO.parent / "shared" / "vectors-external"


@pytest.fixture
def shared_vectors() -> Path:
    if not SHARED_VECTORS.is_dir():
        pytest.skip(f"third-party vectors not present at {SHARED_VECTORS}")
    return SHARED_VECTORS
