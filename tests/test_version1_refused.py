"""Version 1 of the epoch change is withdrawn (spec 11 "Version 1 (withdrawn)"): its saved group
states, group messages and attempt-mailbox blobs are refused with `UnsupportedError` saying so,
and the session that was given one is unchanged.

The three blobs below were made by version 1's own code (triple_ratchet/group/session.py and
attempt_mailbox.py at commit f44e269, the last before the switch), so they are what a member
still holding version-1 data would present:
- V1_STATE: `GroupSession.to_bytes()` of member 0 of a 2-member version-1 group (built as
  tests/test_group_support.py's `make_group(2)` did);
- V1_MESSAGE: that member's `encrypt(b"hi", ...)` blob (wire type 0x20, version 1);
- V1_ATTEMPT_ITEM: `attempt_mailbox.seal_item(DEFAULT_SUITE, bytes(32), bytes(range(32)),
  KIND_ANNOUNCEMENT, b"", DeterministicRandom(b"v1"))` (wire type 0x21, version 1).
"""

from __future__ import annotations

import pytest
from group_v2_sim import Hub, create, make_node, settle

from triple_ratchet import GroupSession, cbor
from triple_ratchet.errors import UnsupportedError
from triple_ratchet.group.message import GroupMessage
from triple_ratchet.suites import DEFAULT_SUITE

V1 = "protocol version 1 is no longer supported"

V1_STATE = bytes.fromhex(
    "83781c747269706c652d726174636865742067726f75702073657373696f6e0190016661637469766559035a"
    "9201504747474747474747474747474747474701828258cb8501015841049569bae9e3dd5870046034a66c92"
    "85a69895ba394ce089920ce58c49594e97c8b9cfc596807f7429de955b7f47c4a5bcb6b2378302fd97ee9169"
    "3b87dee020a6584104d8e2c55ab0d77b257522bb15d888e532c612bcd230fba9a0455ebdb44dd522c05a8bbb"
    "4eb87dcbeb79ed2ec85ab14e5fd6b43bf34bd9f39b70ced4396b113eec584047fc6c990760afcb73e69b6871"
    "5d0302f9ce1af2a645a6d1df70e19a69dc1e503aa48896af55b977b71278ee3355285eb22286ac7310f93264"
    "41f457a435f991584104e7540fce6f58bcef700c043cec24227305c2b180f4e3aadf9b7229bebfbd3708d00b"
    "ac04734dd97ea5940e9ed8f4f2ec4d798587bfc7a1101448e9341a645dfc8258cb850101584104b1d268b0cd"
    "6fdd044eb5c9f2128ade934d6766939daed42fa529ce5e7c3542f7dac30b52cc7cfcf569ba84aaa064167ad5"
    "15047c6e3f96c5fd802c1c4d67c6a0584104e72b34e08ec8ca46e5b16f55778c848ee7c4e4e6a4f8b2279cc5"
    "856d7897f6fab53e9428a97dc9431f6a36b1a7b44991fce46e76dcf98db06967af30118385145840bb1a88c5"
    "05a5e945e61476d97d8763999f8dcb29c78c6fc87735240072de8c1e713a987d2f689750bc66b8a969bf9007"
    "07f30db047ed2ef8a53a248c309c98b75841047cf59cc51cd344523f77484b4bff43f63d035d7b19a8ee0018"
    "83f854c31e57f6e4a1ad0fec68f9e6f1de37c8dca973b2974dc121311aa8fabf2ae3d2acc6e944005820c1f0"
    "95994d9c2ee7878fda96f9cb82d6f62590c60b25859090f89295bb14745f5820f990c5da4b04ae3150250e8e"
    "c228eeba3ad0c1a57e26683ad3eb7bb7f14592e75820ba510d529860f9a6fee3ec9f627de96d7c6dd6769961"
    "5394cdb33c8ffe05efa25820aab68412923681b8f88704496fb57b889fab3b3edbe5fd48e2582fccd4f07e42"
    "5820dd5dd7c7e2ae44d7a098a193e19ffe225146e7a5cb1ea441cb343a2b479c031a5820aabaf45602d7f863"
    "bad826f8a36f0b05e7e246ab8aa0b9aba4f8055a3970f6a88258205ceaeb216ae9e270c62faab21156970b2d"
    "987c2c933d831d181fae3266dcfd8e0082f6835820b8ac460828dba324714eef9b2c4f1d9c9bef59a42b690a"
    "8dd8a7ddc125f8e9c00080408082820080820080408080f6808080f6801b0000018bcfe56800001927101a24"
    "0c8400f480"
)

V1_MESSAGE = bytes.fromhex(
    "851820015820f990c5da4b04ae3150250e8ec228eeba3ad0c1a57e26683ad3eb7bb7f14592e758201ff7fe59"
    "be748f43764ccd709fe1da3e90dacfd4e86bf5a2138fc8d91b1d2888590110ab86f3b889c42c514397898a93"
    "23356372e66b2fb3b98d72bf87e3b53192fd66f2640a1343642e4f72aeb82b2ea2af5afd57285cc79577c5c6"
    "79d5e3933685de749690fb5e020468fa59eb41ae6cfc4676ab63f937dd430c85c8634856dbbab6afbec6722b"
    "17d913c5480d18ebfb8dccb32fb64578080f8c9d7be22ba9ce8ec1986e451e1b5693a5e36073d652a9c37d60"
    "f985199781ff26218ba517f5ea6dc1787aac6820d4bdaa60f3c5a5b2376c2453c9cb1f23fe8ae46f0f08b2d3"
    "c71e00ddc6da591b6263ebdd190a7a4b6deaf75c2cac6f7a6b2fa5c3fb407062d4c1d96a9d0304436e6ef112"
    "3db4112623477cd4bb15ada061923f65a4ad34bc4f15bbd71b80446cfd6ee5f3f6d02b9c19f47f"
)

V1_ATTEMPT_ITEM = bytes.fromhex(
    "851821015820000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f4c6118bc7740"
    "8af539e3623291590110e20fb5949b3f46cc634c2dd61e7d1412d6afdffc95de4ec7626e62cd9829c4bb2e08"
    "320f79360780e9f053845177d64a508835f22f80668b735f84185539e6a6bc362cc59db70bffe7f547f655dc"
    "73d2a0a401e4775c58aa8f625e4bd6c70d10cd1715dc762aabb2416aa9bf0209a64056e87ad255170609960e"
    "1fefcbab2d50d1bcdf8b7276dad900ea44380583cf3c8c1f265ad9b99b4241a476dac890b60b0a45e639af3a"
    "22190b7bed9d326c842514b6a203036044c6a7092d363e0479948e75089b72f9582040f3ede4b919343083cd"
    "096391e27883cdbcd4828f0919a78aebc23120081ac1b25854fb1f60af1d4ea8b9f930033f2b474111af6a7a"
    "ec1b4ff4b60c3fa271dae5faa0b6bfe05c3d"
)


def _group() -> tuple[Hub, list]:  # type: ignore[type-arg]
    hub = Hub()
    nodes = [make_node(n) for n in "AB"]
    create(hub, nodes[0], nodes[1:])
    settle(hub, nodes)
    return hub, nodes


def test_the_kept_blobs_are_version_1() -> None:
    """The literals are what they claim (a test of the test data, so the refusals below are
    refusals of version 1 and not of junk)."""
    state = cbor.as_list(cbor.decode(V1_STATE, max_size=len(V1_STATE), max_items=10**5,
                                     max_depth=16), "state")
    assert state[0] == "triple-ratchet group session" and state[1] == 1
    for blob, wire in ((V1_MESSAGE, 0x20), (V1_ATTEMPT_ITEM, 0x21)):
        items = cbor.as_list(cbor.decode(blob, max_size=len(blob), max_items=8, max_depth=1),
                             "blob", length=5)
        assert (items[0], items[1]) == (wire, 1)


def test_version_1_saved_state_is_refused() -> None:
    _, (a, _) = _group()
    with pytest.raises(UnsupportedError, match=V1):
        GroupSession.from_bytes(V1_STATE, a.identity)


def test_version_1_group_message_is_refused_and_changes_nothing() -> None:
    hub, (_a, b) = _group()
    before = b.session.to_bytes()
    with pytest.raises(UnsupportedError, match=V1):
        b.session.receive(V1_MESSAGE, hub.now, entry_time=hub.t)
    assert b.session.to_bytes() == before
    with pytest.raises(UnsupportedError, match=V1):
        GroupMessage.from_bytes(DEFAULT_SUITE, V1_MESSAGE)
    # Addressed to this group's own mailbox, it is refused all the same.
    ours = V1_MESSAGE[:4] + cbor.bstr_head(32) + b.session.mailbox_id + V1_MESSAGE[4 + 2 + 32:]
    with pytest.raises(UnsupportedError, match=V1):
        b.session.receive(ours, hub.now, entry_time=hub.t)
    assert b.session.to_bytes() == before


def test_version_1_attempt_blob_is_refused_and_changes_nothing() -> None:
    hub, (_a, b) = _group()
    before = b.session.to_bytes()
    with pytest.raises(UnsupportedError, match=V1):
        b.session.receive(V1_ATTEMPT_ITEM, hub.now, entry_time=hub.t)
    assert b.session.to_bytes() == before
    # The check is on the version: the same wire type at another version is just not ours.
    other = V1_ATTEMPT_ITEM[:3] + b"\x02" + V1_ATTEMPT_ITEM[4:]
    with pytest.raises(Exception) as info:
        b.session.receive(other, hub.now, entry_time=hub.t)
    assert not isinstance(info.value, UnsupportedError)
    assert b.session.to_bytes() == before


def test_version_1_epoch_state_inside_a_saved_session_is_refused() -> None:
    """An epoch state of version 1's shape (18 elements, no version) is refused by name."""
    from triple_ratchet.group.epoch import EpochState
    _, (a, _) = _group()
    epoch = a.session._s.epoch
    assert epoch is not None
    items = epoch.to_cbor()
    assert items[-1] == 2
    with pytest.raises(UnsupportedError, match=V1):
        EpochState.from_cbor(cbor.decode(cbor.encode(items[:-1]), max_size=10**7,
                                         max_items=10**6, max_depth=8))
