"""Pairwise benchmark: our Double Ratchet against its primitive floor and a reference package.

Run: /work/venv/bin/python bench/pairwise.py [--rounds N] [--quick]

Per suite, measured in one process, interleaved in rounds (see _timing.py), medians reported:
- steady: one encrypt + one decrypt in a chain without DH steps, 100 B and 4 KiB;
- DH step: ping-pong, every message makes its receiver do a DH ratchet step;
- handshake (when triple_ratchet.pairwise is present): verify a prekey bundle, initiate with an
  empty first message, respond.
Every suite runs, the hybrid ones (ML-KEM-768 beside the curve: the PQXDH-style handshake) after
the classical ones; then each hybrid suite is timed against its classical suite in the same
interleaved rounds (handshake and DH step), with the sizes of their bundles and initial messages.
Floors are the primitive calls the protocol cannot avoid, made through the same suite functions
the library uses: steady = 2 header AEADs + 2 body AEADs + 4 HMACs (KDF_CK on each side);
DH step = the steady part + 1 key generation + 2 DH + 2 KDF_RK (HKDF).
The `doubleratchet` PyPI package (1.3.0: X25519, HKDF/HMAC-SHA-256, AES-CBC+HMAC, no header
encryption) runs the same operations when it is importable. Targets: steady 100 B within 2x its
floor, DH step within 1.5x its floor.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Coroutine
from typing import Any

from _timing import Batch, Result, ratio, run_rounds

from triple_ratchet.double_ratchet import (
    LABEL_DR_CHAIN_MESSAGE,
    LABEL_DR_CHAIN_NEXT,
    LABEL_DR_ROOT,
    DoubleRatchet,
    kdf_root,
)
from triple_ratchet.random import DeterministicRandom
from triple_ratchet.suites import CLASSICAL_SUITES, HYBRID_SUITES, Suite

AD = b"benchmark associated data, about the size of two identities: " + bytes(64)
SECRET = bytes(range(32))


# --- Our Double Ratchet -------------------------------------------------------------------


def _pair(suite: Suite) -> tuple[DoubleRatchet, DoubleRatchet]:
    rng = DeterministicRandom(b"bench")
    bob_key = suite.generate_dh(rng)
    alice = DoubleRatchet.initiate(suite, SECRET, bob_key.public_key(), AD)
    bob = DoubleRatchet.respond(suite, SECRET, bob_key, AD)
    bob.decrypt(alice.encrypt(b"start"))
    return alice, bob


def ours_steady(suite: Suite, size: int) -> Batch:
    alice, bob = _pair(suite)
    plaintext = bytes(size)

    def batch(n: int) -> None:
        encrypt, decrypt = alice.encrypt, bob.decrypt
        for _ in range(n):
            if decrypt(encrypt(plaintext)) is None:
                raise AssertionError
    return batch


def ours_dh_step(suite: Suite, size: int) -> Batch:
    alice, bob = _pair(suite)
    plaintext = bytes(size)
    turn = [alice, bob]

    def batch(n: int) -> None:
        for _ in range(n):
            sender, receiver = turn
            receiver.decrypt(sender.encrypt(plaintext))
            turn.reverse()
    return batch


# --- Floors -------------------------------------------------------------------------------


def floor_steady(suite: Suite, size: int) -> Batch:
    """2 header AEADs + 2 body AEADs + 4 HMACs, through the suite's own functions."""
    hk = os.urandom(32)
    ck0 = os.urandom(suite.hash_len)
    nonce = os.urandom(suite.aead_nonce_len)
    header = bytes(suite.dh_public_len + 8)
    header_aad = b"\x01" + AD
    plaintext = bytes(size)
    key_len = suite.aead_key_len
    hmac, enc, dec = suite.hmac, suite.aead_encrypt, suite.aead_decrypt

    def batch(n: int) -> None:
        ck = ck0
        for _ in range(n):
            mk = hmac(ck, LABEL_DR_CHAIN_MESSAGE)[:key_len]
            next_ck = hmac(ck, LABEL_DR_CHAIN_NEXT)
            eh = enc(hk, nonce, header, header_aad)
            body = enc(mk, nonce, plaintext, AD + eh)
            dec(hk, nonce, eh, header_aad)
            mk2 = hmac(ck, LABEL_DR_CHAIN_MESSAGE)[:key_len]
            hmac(ck, LABEL_DR_CHAIN_NEXT)
            dec(mk2, nonce, body, AD + eh)
            ck = next_ck
    return batch


def floor_dh_step(suite: Suite, size: int) -> Batch:
    """The steady floor + key generation + 2 DH + 2 KDF_RK per message."""
    steady = floor_steady(suite, size)
    old = suite.generate_dh()
    peer = suite.generate_dh().public_key()
    rk = os.urandom(suite.hash_len)
    length = 2 * suite.hash_len + 32

    def batch(n: int) -> None:
        for _ in range(n):
            root, _, _ = kdf_root(suite, rk, old.exchange(peer))
            new = suite.generate_dh()
            suite.derive_secret(root, new.exchange(peer), LABEL_DR_ROOT, b"", length)
        steady(n)
    return batch


# --- Handshake ----------------------------------------------------------------------------


def _fresh_bundles(suite: Suite, n: int) -> list[tuple[Any, bytes]]:
    """n (account, bundle bytes) pairs; an account holds at most 1000 one-time prekeys."""
    from triple_ratchet.identity import Account

    out: list[tuple[Any, bytes]] = []
    while len(out) < n:
        bob = Account.generate(suite)
        out.extend((bob, b.to_bytes()) for b in bob.new_bundles(min(500, n - len(out))))
    return out


def handshake(suite: Suite) -> Batch | None:
    """Verify a bundle, initiate, respond. Making the one-time prekeys is included here and
    timed alone by `prekey_generation`, to be subtracted."""
    try:
        from triple_ratchet.identity import IdentityKeyPair, PrekeyBundle
        from triple_ratchet.pairwise import PairwiseSession
    except ImportError:
        return None
    alice = IdentityKeyPair.generate(suite)

    def batch(n: int) -> None:
        for bob, data in _fresh_bundles(suite, n):
            bundle = PrekeyBundle.from_bytes(data, suite)
            _, blob = PairwiseSession.initiate(alice, bundle)
            PairwiseSession.respond(bob, blob)
    return batch


def sizes(suite: Suite) -> tuple[int, int]:
    """Bytes of a bundle with one-time prekeys and of an initial message with an empty first
    ratchet message (small prekey ids)."""
    from triple_ratchet.identity import Account, IdentityKeyPair
    from triple_ratchet.pairwise import PairwiseSession

    rng = DeterministicRandom(b"sizes")
    bundle = Account.generate(suite, rng).new_bundles(1, rng)[0]
    _, blob = PairwiseSession.initiate(IdentityKeyPair.generate(suite, rng), bundle, rng)
    return len(bundle.to_bytes()), len(blob)


def prekey_generation(suite: Suite) -> Batch | None:
    try:
        import triple_ratchet.identity  # noqa: F401
    except ImportError:
        return None

    def batch(n: int) -> None:
        _fresh_bundles(suite, n)
    return batch


# --- The doubleratchet package (1.3.0) ------------------------------------------------------


def _run(coro: Coroutine[Any, Any, Any]) -> Any:
    """Drive a coroutine that never really suspends (the package's are CPU-only)."""
    try:
        coro.send(None)
    except StopIteration as stop:
        return stop.value
    raise RuntimeError("coroutine suspended")


def peer_package() -> Callable[[int, bool], Batch] | None:
    try:
        from doubleratchet import DoubleRatchet as PeerDR
        from doubleratchet import Header
        from doubleratchet.recommended import (
            HashFunction,
            aead_aes_hmac,
            diffie_hellman_ratchet_curve25519,
            kdf_hkdf,
            kdf_separate_hmacs,
        )
    except ImportError:
        return None

    class Aead(aead_aes_hmac.AEAD):
        @staticmethod
        def _get_hash_function() -> HashFunction:
            return HashFunction.SHA_256

        @staticmethod
        def _get_info() -> bytes:
            return b"bench message key"

    class RootKdf(kdf_hkdf.KDF):
        @staticmethod
        def _get_hash_function() -> HashFunction:
            return HashFunction.SHA_256

        @staticmethod
        def _get_info() -> bytes:
            return b"bench root chain"

    class ChainKdf(kdf_separate_hmacs.KDF):
        @staticmethod
        def _get_hash_function() -> HashFunction:
            return HashFunction.SHA_256

    class Peer(PeerDR):
        @staticmethod
        def _build_associated_data(associated_data: bytes, header: Header) -> bytes:
            return (associated_data + header.ratchet_pub
                    + header.previous_sending_chain_length.to_bytes(8, "big")
                    + header.sending_chain_length.to_bytes(8, "big"))

    dh_class = diffie_hellman_ratchet_curve25519.DiffieHellmanRatchet
    config = dict(diffie_hellman_ratchet_class=dh_class, root_chain_kdf=RootKdf,
                  message_chain_kdf=ChainKdf, message_chain_constant=b"\x01\x02",
                  dos_protection_threshold=1000, max_num_skipped_message_keys=2000, aead=Aead)

    def make(size: int, ping_pong: bool) -> Batch:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

        bob_priv = X25519PrivateKey.generate()
        raw = serialization.Encoding.Raw
        bob_priv_bytes = bob_priv.private_bytes(raw, serialization.PrivateFormat.Raw,
                                                serialization.NoEncryption())
        bob_pub = bob_priv.public_key().public_bytes(raw, serialization.PublicFormat.Raw)
        alice, first = _run(Peer.encrypt_initial_message(
            **config, shared_secret=SECRET, recipient_ratchet_pub=bob_pub, message=b"start",
            associated_data=AD))
        bob, _ = _run(Peer.decrypt_initial_message(
            **config, shared_secret=SECRET, own_ratchet_priv=bob_priv_bytes, message=first,
            associated_data=AD))
        plaintext = bytes(size)
        turn = [alice, bob]

        def batch(n: int) -> None:
            for _ in range(n):
                sender, receiver = turn
                message = _run(sender.encrypt_message(plaintext, AD))
                _run(receiver.decrypt_message(message, AD))
                if ping_pong:
                    turn.reverse()
        return batch

    return make


# --- Report -------------------------------------------------------------------------------


def _us(seconds: float) -> str:
    return f"{seconds * 1e6:9.1f}"


def handshake_from_pool(suite: Suite, pool_size: int = 2000) -> Batch:
    """Verify a bundle, initiate, respond, with the bundles made beforehand (no subtraction of a
    separately timed generation, which doubles the noise on a loaded machine)."""
    from triple_ratchet.identity import IdentityKeyPair, PrekeyBundle
    from triple_ratchet.pairwise import PairwiseSession

    alice = IdentityKeyPair.generate(suite)
    pool = _fresh_bundles(suite, pool_size)

    def batch(n: int) -> None:
        for _ in range(n):
            if not pool:  # not expected with the default size; keeps a long run going
                pool.extend(_fresh_bundles(suite, 200))
            bob, data = pool.pop()
            bundle = PrekeyBundle.from_bytes(data, suite)
            _, blob = PairwiseSession.initiate(alice, bundle)
            PairwiseSession.respond(bob, blob)
    return batch


def hybrid_against_classical(rounds: int, batch_seconds: float) -> None:
    """Each hybrid suite against its classical suite, timed in the same interleaved rounds, so
    the ratio compares like with like on a machine whose speed drifts."""
    print("-- hybrid (PQXDH-style) against classical, interleaved in the same rounds")
    print(f"{'':<34}{'classical':>11}{'hybrid':>11}{'hybrid/cl.':>12}")
    for hybrid in HYBRID_SUITES:
        classical = hybrid.classical
        contenders: dict[str, Batch] = {}
        for tag, suite in (("c", classical), ("h", hybrid)):
            gen = prekey_generation(suite)
            if gen is None:
                return
            contenders[f"hs-{tag}"] = handshake_from_pool(suite)
            contenders[f"gen-{tag}"] = gen
            contenders[f"dh-{tag}"] = ours_dh_step(suite, 100)
        results = run_rounds(contenders, rounds, batch_seconds * 5)
        print(f"{hybrid.name} vs {classical.name}")
        for label, key in (("  handshake (verify+init+resp)", "hs"),
                           ("  one-time prekey (bundle) made", "gen"),
                           ("  DH step (ping-pong) 100 B", "dh")):
            c, h = results[f"{key}-c"], results[f"{key}-h"]
            print(f"{label:<34}{_us(c.median):>11}{_us(h.median):>11}{ratio(h, c):>11.2f}x")
        (cb, cm), (hb, hm) = sizes(classical), sizes(hybrid)
        print(f"{'  bundle / initial message, bytes':<34}{f'{cb} / {cm}':>13}"
              f"{f'{hb} / {hm}':>13}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--quick", action="store_true", help="3 rounds, short batches")
    args = parser.parse_args(argv)
    rounds = 3 if args.quick else args.rounds
    batch_seconds = 0.001 if args.quick else 0.0015
    peer = peer_package()
    failures: list[str] = []

    print(f"pairwise benchmark: {rounds} interleaved rounds, medians (µs per operation)")
    print(f"{'operation':<34}{'ours':>9}{'floor':>9}{'ours/floor':>11}{'target':>8}"
          f"{'doubleratchet':>15}{'pkg/ours':>9}")
    for suite in (*CLASSICAL_SUITES, *HYBRID_SUITES):
        print(f"-- {suite.name}")
        for label, size, ours_fn, floor_fn, target, ping_pong in (
            ("steady 100 B", 100, ours_steady, floor_steady, 2.0, False),
            ("steady 4 KiB", 4096, ours_steady, floor_steady, None, False),
            ("DH step (ping-pong) 100 B", 100, ours_dh_step, floor_dh_step, 1.5, True),
        ):
            contenders: dict[str, Batch] = {"ours": ours_fn(suite, size),
                                            "floor": floor_fn(suite, size)}
            if peer is not None:
                contenders["peer"] = peer(size, ping_pong)
            results = run_rounds(contenders, rounds, batch_seconds)
            r = ratio(results["ours"], results["floor"])
            peer_cols = ""
            if "peer" in results:
                peer_cols = (f"{_us(results['peer'].median):>15}"
                             f"{ratio(results['peer'], results['ours']):>8.1f}x")
            target_col = f"{'<=' + str(target) if target else '':>8}"
            print(f"{label:<34}{_us(results['ours'].median)}{_us(results['floor'].median)}"
                  f"{r:>10.2f}x{target_col}{peer_cols}")
            if target is not None and r > target:
                failures.append(f"{suite.name} {label}: {r:.2f}x > {target}x")
        hs, gen = handshake(suite), prekey_generation(suite)
        if hs is not None and gen is not None:
            results = run_rounds({"handshake": hs, "prekeys": gen}, max(3, rounds // 3),
                                 batch_seconds * 5)
            net: Result = Result("net", [h - g for h, g in zip(
                results["handshake"].per_round, results["prekeys"].per_round, strict=True)])
            print(f"{'handshake (bundle verify+init+resp)':<34}{_us(net.median)}"
                  f"{'':>9}{'':>11}{'':>8}   (one-time prekey generation excluded)")
    if handshake(CLASSICAL_SUITES[0]) is not None:
        hybrid_against_classical(rounds, batch_seconds)
    if peer is None:
        print("(the doubleratchet package is not importable: no peer column)")
    for failure in failures:
        print(f"TARGET MISSED: {failure}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
