"""The hub: a relay that stores and forwards opaque blobs in mailboxes (spec/10-hub.md).

`access` (mailbox ids and access proofs) is pure and is what the group layer imports; `frames`
is the sans-IO wire codec; `store`, `sqlite_store` and `redis_store` are the backends; `server`
and `client` do the WebSocket I/O.
"""

from triple_ratchet.hub.access import AccessKey, directory_id, mailbox_id
from triple_ratchet.hub.frames import Kind

__all__ = ["AccessKey", "Kind", "directory_id", "mailbox_id"]
