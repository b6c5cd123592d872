"""`Group`, the app's handle on one group, and the message envelope inside group plaintexts.

Every group plaintext is an envelope (spec/15-client.md "Envelope"): CBOR
`[1, kind, message_id, payload]` with `kind` 0 (text: a string), 1 (data: bytes) or 2 (the
group's info: `[name, [[identity, display name], ...]]`, sent by the creator at creation and by
the proposer of an add); over a pairwise session also 3 (a rejoin request), 4 (a repaired
sealing) and 5 (a membership hint), each `[group id, bytes]`. The 16-byte message id is the
sender's; receivers keep the ids they delivered, so a message reaches the app once even across
crashes and restarts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from triple_ratchet import cbor
from triple_ratchet.client.directory import check_name
from triple_ratchet.client.events import Member
from triple_ratchet.errors import DecodeError

if TYPE_CHECKING:
    from triple_ratchet.client.client import Client

ENVELOPE_VERSION = 1
TEXT, DATA, INFO = 0, 1, 2
# Over a pairwise session only: what a group session hands the app for one peer (11.v2.25,
# 11.v2.31), payload `[group id, bytes]`.
REJOIN_REQUEST, REPAIRED_SEALING, MEMBERSHIP_HINT = 3, 4, 5
MESSAGE_ID_LEN = 16
MAX_NAME_LEN = 256  # UTF-8 bytes of a display or group name


@dataclass(frozen=True)
class Envelope:
    kind: int
    message_id: bytes
    text: str | None = field(default=None, repr=False)
    data: bytes = field(default=b"", repr=False)
    group_name: str = ""
    names: tuple[tuple[bytes, str], ...] = field(default=(), repr=False)
    group_id: bytes = b""

    def to_bytes(self) -> bytes:
        payload: cbor.CborEncodable
        if self.kind == TEXT:
            payload = self.text or ""
        elif self.kind == DATA:
            payload = self.data
        elif self.kind in (REJOIN_REQUEST, REPAIRED_SEALING, MEMBERSHIP_HINT):
            payload = [self.group_id, self.data]
        else:
            payload = [self.group_name, [[i, n] for i, n in self.names]]
        return cbor.encode([ENVELOPE_VERSION, self.kind, self.message_id, payload])

    @classmethod
    def from_bytes(cls, data: bytes) -> Envelope:
        f = cbor.as_list(cbor.decode(data, max_size=len(data), max_items=16 + 3 * 4096),
                         "envelope", 4)
        if cbor.as_int(f[0], "envelope version") != ENVELOPE_VERSION:
            raise DecodeError("envelope of an unknown version")
        kind = cbor.as_int(f[1], "envelope kind")
        mid = cbor.as_bytes(f[2], "message id", length=MESSAGE_ID_LEN)
        if kind == TEXT:
            text = cbor.as_str(f[3], "text")
            return cls(TEXT, mid, text, text.encode("utf-8"))
        if kind == DATA:
            return cls(DATA, mid, None, cbor.as_bytes(f[3], "data"))
        if kind == INFO:
            info = cbor.as_list(f[3], "group info", 2)
            names = []
            for item in cbor.as_list(info[1], "member names"):
                pair = cbor.as_list(item, "member name", 2)
                names.append((cbor.as_bytes(pair[0], "identity", max_length=512),
                              check_name(pair[1], "name")))
            return cls(INFO, mid, group_name=check_name(info[0], "group name"),
                       names=tuple(names))
        if kind in (REJOIN_REQUEST, REPAIRED_SEALING, MEMBERSHIP_HINT):
            pair = cbor.as_list(f[3], "group payload", 2)
            return cls(kind, mid, data=cbor.as_bytes(pair[1], "group payload"),
                       group_id=cbor.as_bytes(pair[0], "group id", max_length=64))
        raise DecodeError(f"unknown envelope kind {kind}")


class Group:
    """A handle on one group of a `Client` (cheap; `client.group(id)` returns an equal one)."""

    def __init__(self, client: Client, group_id: bytes) -> None:
        self._client = client
        self.id = group_id

    @property
    def name(self) -> str:
        return self._client._group_state(self.id).name

    @property
    def active(self) -> bool:
        """False once we were removed (or must rejoin)."""
        return self._client._group_state(self.id).session.status == "active"

    @property
    def epoch(self) -> int:
        return self._client._group_state(self.id).epoch

    @property
    def epoch_id(self) -> bytes:
        """The current epoch's public id (compare it out of band to rule out a fork)."""
        return self._client._group_state(self.id).session.public_epoch_id

    @property
    def members(self) -> list[Member]:
        gs = self._client._group_state(self.id)
        if gs.session.status != "active":
            return []
        return [self._client._member(gs, identity) for identity in gs.session.roster]

    async def send(self, message: str | bytes) -> bytes:
        """Encrypt and send; returns the message id. The state and the blob are stored before
        the blob leaves, so a crash re-sends it from the outbox (the hub keeps it once)."""
        return await self._client._send(self.id, message)

    async def add(self, identity: bytes) -> None:
        """Propose adding `identity` (its join key is taken from the directory); the epoch
        change completes in the background (`MembershipChanged`, `EpochChanged`)."""
        await self._client._propose(self.id, add=identity)

    async def remove(self, identity: bytes) -> None:
        await self._client._propose(self.id, remove=identity)

    async def offer_rejoin(self, identity: bytes) -> None:
        """Tell a member of the roster that holds no session of the group (its notice was lost,
        or its one-time join key was used twice) how to ask back in: a membership hint over the
        pairwise session (11.v2.31); its rejoin request comes back, we propose its resume, and
        it joins from the resume notice."""
        await self._client._offer_rejoin(self.id, identity)

    async def refresh(self) -> None:
        """Propose fresh keys for everyone (allowed an hour into an epoch)."""
        await self._client._propose(self.id, refresh=True)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Group) and other.id == self.id and other._client is self._client

    def __hash__(self) -> int:
        return hash(self.id)

    def __repr__(self) -> str:
        return f"Group({self.id.hex()[:12]}…)"


__all__ = ["Envelope", "Group"]
