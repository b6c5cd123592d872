"""KEM benchmark: ML-KEM-768 and the hybrid HPKE KEMs against their floors and the classical DHKEMs.

Run: /work/venv/bin/python bench/kem.py [--rounds N] [--quick]

Measured in one process, interleaved in rounds (see _timing.py), medians reported (µs/op):
- ML-KEM-768: key generation from a seed (`cryptography`, plus decoding and checking the public
  key), our derandomised `encapsulate(m)` to a key seen before (its expansion cached) and to a new
  key (cache cleared before each call), `cryptography`'s randomised `encapsulate()` (the floor our
  pure-Python encapsulation is compared with) and our `encapsulate_random()` over it (parsing ek
  each time), decapsulation (`cryptography`), and the public-key check
  (`MlKemPublicKey.from_bytes`);
- HPKE single-shot seal and open of a 32-byte secret (what a sealing of the epoch change is) for
  DHKEM(P-256) + AES-256-GCM and DHKEM(X25519) + ChaCha20-Poly1305 (suites 1 and 2) and
  MLKEM768-P256 + AES-256-GCM and X-Wing + ChaCha20-Poly1305 (suites 3 and 4); hybrid seals to a
  key seen before and to a new one.
"""

from __future__ import annotations

import argparse
import sys

from _timing import Batch, Result, ratio, run_rounds
from cryptography.hazmat.primitives.asymmetric.mlkem import MLKEM768PrivateKey

from triple_ratchet.random import DeterministicRandom
from triple_ratchet.suites.hpke import (
    HPKE_MLKEM768_P256_AES256GCM,
    HPKE_P256_AES256GCM,
    HPKE_X25519_CHACHA20POLY1305,
    HPKE_XWING_CHACHA20POLY1305,
    HpkeSuite,
)
from triple_ratchet.suites.mlkem import (
    MLKEM768_PUBLIC_KEY_LEN,
    MlKemPrivateKey,
    MlKemPublicKey,
    clear_expanded_key_cache,
)

RNG = DeterministicRandom(b"kem benchmark")
SECRET = bytes(32)


def mlkem_contenders() -> dict[str, Batch]:
    seed = RNG(64)
    key = MlKemPrivateKey.from_seed(seed)
    public = key.public_key()
    encoded = public.to_bytes()
    m = RNG(32)
    _, ciphertext = public.encapsulate(m)
    theirs = MLKEM768PrivateKey.from_seed_bytes(seed).public_key()

    def keygen(n: int) -> None:
        for _ in range(n):
            MlKemPrivateKey.from_seed(seed)

    def check(n: int) -> None:
        for _ in range(n):
            MlKemPublicKey.from_bytes(encoded)

    def encaps_cached(n: int) -> None:
        for _ in range(n):
            public.encapsulate(m)

    other = MlKemPrivateKey.from_seed(RNG(64)).public_key()

    def encaps_new_key(n: int) -> None:
        for _ in range(n):  # forgets only this key, so the other contenders keep theirs
            clear_expanded_key_cache(other)
            other.encapsulate(m)

    def encaps_floor(n: int) -> None:
        for _ in range(n):
            theirs.encapsulate()

    def encaps_random(n: int) -> None:
        for _ in range(n):
            public.encapsulate_random()

    def decaps(n: int) -> None:
        for _ in range(n):
            key.decapsulate(ciphertext)

    return {"keygen (seed)": keygen, "public key check": check,
            "encaps, key seen before": encaps_cached, "encaps, new key": encaps_new_key,
            "encaps, cryptography (floor)": encaps_floor,
            "encapsulate_random (ours, parses ek)": encaps_random, "decaps": decaps}


def hpke_contenders(hpke: HpkeSuite) -> dict[str, Batch]:
    kem = hpke.kem
    pair = kem.derive_key_pair(RNG(64))
    ikm_e = RNG(kem.n_ikm)
    enc, ct = hpke.seal(pair.public_key, b"info", b"", SECRET, ikm_e)
    hybrid = kem.n_enc > 65

    def seal(n: int) -> None:
        for _ in range(n):
            hpke.seal(pair.public_key, b"info", b"", SECRET, ikm_e)

    def open_(n: int) -> None:
        for _ in range(n):
            hpke.open(pair.private_key, enc, b"info", b"", ct)

    contenders: dict[str, Batch] = {"seal": seal, "open": open_}
    if hybrid:
        other = kem.derive_key_pair(RNG(64)).public_key
        other_mlkem = MlKemPublicKey.from_bytes(other[:MLKEM768_PUBLIC_KEY_LEN])

        def seal_new_key(n: int) -> None:
            for _ in range(n):  # as if sealing to a member for the first time
                clear_expanded_key_cache(other_mlkem)
                hpke.seal(other, b"info", b"", SECRET, ikm_e)

        contenders["seal, new key"] = seal_new_key
    return contenders


def _us(seconds: float) -> str:
    return f"{seconds * 1e6:10.1f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--quick", action="store_true", help="3 rounds, short batches")
    args = parser.parse_args(argv)
    rounds = 3 if args.quick else args.rounds
    batch_seconds = 0.005 if args.quick else 0.01

    print(f"KEM benchmark: {rounds} interleaved rounds, medians (µs per operation)")
    print("-- ML-KEM-768")
    results = run_rounds(mlkem_contenders(), rounds, batch_seconds, reps=3)
    floor = results["encaps, cryptography (floor)"]
    for name, result in results.items():
        extra = ""
        if name.startswith("encaps") and result is not floor:
            extra = f"   {ratio(result, floor):6.1f}x the floor"
        print(f"{name:<38}{_us(result.median)}{extra}")

    suites = (HPKE_P256_AES256GCM, HPKE_X25519_CHACHA20POLY1305, HPKE_MLKEM768_P256_AES256GCM,
              HPKE_XWING_CHACHA20POLY1305)
    print("-- HPKE single-shot, 32-byte secret (enc + ct bytes)")
    contenders: dict[str, Batch] = {}
    for hpke in suites:
        for op, batch in hpke_contenders(hpke).items():
            contenders[f"{hpke.kem.name}|{op}"] = batch
    hpke_results = run_rounds(contenders, rounds, batch_seconds, reps=3)
    classical: dict[str, Result] = {}
    for hpke in suites:
        size = hpke.kem.n_enc + len(SECRET) + hpke.aead.n_t
        print(f"{hpke.kem.name} + {hpke.aead.name} ({size} B)")
        for key, result in hpke_results.items():
            kem_name, op = key.split("|")
            if kem_name != hpke.kem.name:
                continue
            extra = ""
            if hpke.kem.n_enc <= 65:
                classical[f"{hpke.aead.name}|{op}"] = result
            elif f"{hpke.aead.name}|{op.split(',')[0]}" in classical:
                base = classical[f"{hpke.aead.name}|{op.split(',')[0]}"]
                extra = f"   {ratio(result, base):6.1f}x the same AEAD's DHKEM"
            print(f"  {op:<32}{_us(result.median)}{extra}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
