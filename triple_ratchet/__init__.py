"""triple_ratchet: end-to-end encrypted group messaging (the Triple Ratchet).

Layers, bottom up: `suites` (primitives) → `cbor` (strict wire encoding) → `identity` and
`handshake` → `double_ratchet` → `dkg` → `group` → `hub` and the CLI. A layer imports only from
layers below it; the core does no I/O.
"""

from triple_ratchet import errors

__version__ = "0.1.0"

__all__ = ["__version__", "errors"]
