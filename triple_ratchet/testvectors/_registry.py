"""Where each layer's vector verifier is registered. One line per module."""

from __future__ import annotations

# Each imported module calls `register(...)` / `register_detector(...)` at import time.
from triple_ratchet.testvectors import (
    cbor,  # noqa: F401
    cocktail,  # noqa: F401
    dkg_additions,  # noqa: F401
    dkg_cocktail,  # noqa: F401
    double_ratchet,  # noqa: F401
    epoch_run_v2,  # noqa: F401
    epoch_script_v2,  # noqa: F401
    epoch_v2,  # noqa: F401
    group,  # noqa: F401
    handshake,  # noqa: F401
    hpke,  # noqa: F401
    hub,  # noqa: F401
    identity,  # noqa: F401
    mlkem,  # noqa: F401
    suites,  # noqa: F401
    wycheproof,  # noqa: F401
)
