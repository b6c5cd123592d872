"""Where each layer's vector verifier is registered. One line per module."""

from __future__ import annotations

# Each imported module calls `register(...)` / `register_detector(...)` at import time.
from triple_ratchet.testvectors import cbor  # noqa: F401
from triple_ratchet.testvectors import cocktail  # noqa: F401
from triple_ratchet.testvectors import double_ratchet  # noqa: F401
from triple_ratchet.testvectors import handshake  # noqa: F401
from triple_ratchet.testvectors import identity  # noqa: F401
from triple_ratchet.testvectors import key_schedule  # noqa: F401
from triple_ratchet.testvectors import wycheproof  # noqa: F401
from triple_ratchet.testvectors import dkg_additions  # noqa: F401
