"""Mailbox ids: how a mailbox is named from the public half of its access key.

Shared by the group layer (which derives access keys from epoch and attempt secrets) and the hub
(which checks that a connection's access key hashes to the mailbox it asks for), so it sits low.
"""

from __future__ import annotations

import hashlib

from triple_ratchet.suites import Suite

LABEL_MAILBOX_ID = b"triple-ratchet mailbox id"
MAILBOX_ID_LEN = 32


def mailbox_id(suite: Suite, access_public_key: bytes) -> bytes:
    """SHA-256(len(label) ‖ label ‖ suite id ‖ access public key): 32 bytes, any suite."""
    return hashlib.sha256(
        bytes([len(LABEL_MAILBOX_ID)])
        + LABEL_MAILBOX_ID
        + suite.suite_id.to_bytes(2, "big")
        + access_public_key
    ).digest()
