"""The client layer: an account on a device, its groups and contacts, over a hub (issue 10).

    client = await Client.open("alice.db", hub="ws://127.0.0.1:8765", passphrase="...",
                               name="alice")
    group = await client.create_group("friends", [bob_identity, carol_identity])
    await group.send("hi")
    async for event in client.events():
        ...

See spec/15-client.md for what is stored and published, and CLIENT-API.md for the API.
"""

from triple_ratchet.client.client import Client, Contact
from triple_ratchet.client.events import (
    CatchingUp,
    ConnectionChanged,
    ConnectionState,
    DirectMessage,
    EpochChanged,
    Event,
    Fork,
    Gap,
    GroupJoined,
    GroupMessage,
    Member,
    MemberOffline,
    MembershipChanged,
    Refused,
    RejoinNeeded,
    RemovedFromGroup,
)
from triple_ratchet.client.group import Group
from triple_ratchet.client.store import (
    MemoryStore,
    Passphrase,
    SealedStore,
    SQLiteStore,
    StorageKey,
    Store,
    Transaction,
)

__all__ = [
    "CatchingUp",
    "Client",
    "ConnectionChanged",
    "ConnectionState",
    "Contact",
    "DirectMessage",
    "EpochChanged",
    "Event",
    "Fork",
    "Gap",
    "Group",
    "GroupJoined",
    "GroupMessage",
    "Member",
    "MemberOffline",
    "MembershipChanged",
    "MemoryStore",
    "Passphrase",
    "Refused",
    "RejoinNeeded",
    "RemovedFromGroup",
    "SQLiteStore",
    "SealedStore",
    "StorageKey",
    "Store",
    "Transaction",
]
