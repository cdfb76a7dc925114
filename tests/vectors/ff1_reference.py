#!/usr/bin/env python3
"""An independent FF1 (NIST SP 800-38G, section 6.2, Algorithm 7), written from the standard
with Python's integers and the `cryptography` package's AES, to check pg_deident's
pseudonymize_int (SPEC "Pseudonymization"), whose FF1 (src/ff1.rs, radix 2 only) is ours.

It first reproduces NIST's published FF1 samples 1 to 9 (AES-128, -192 and -256; radix 10
and 36), then prints SPEC's four pseudonymize_int vectors for the test key (bytes 0x00..0x1f).
The Rust unit tests (src/ff1.rs, `spec_vectors`) and the regress test
(tests/pg_regress/sql/pseudonym.sql) check the same numbers.

    pip install cryptography; python3 tests/vectors/ff1_reference.py

Exit status 0 when every sample and vector agrees; not part of CI (it needs a pip package).
"""

import hashlib
import hmac
import math
import sys

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes


def aes_ecb(key: bytes, block: bytes) -> bytes:
    enc = Cipher(algorithms.AES(key), modes.ECB()).encryptor()
    return enc.update(block) + enc.finalize()


def prf(key: bytes, x: bytes) -> bytes:
    """PRF of section 4.5 (Algorithm 6): the last block of CBC-MAC with a zero IV."""
    assert len(x) % 16 == 0
    y = bytes(16)
    for j in range(0, len(x), 16):
        y = aes_ecb(key, bytes(a ^ b for a, b in zip(y, x[j:j + 16])))
    return y


def num(numerals, radix: int) -> int:
    """NUM_radix(X): the numerals, most significant first, as a number."""
    n = 0
    for d in numerals:
        n = n * radix + d
    return n


def str_m(x: int, radix: int, m: int):
    """STR^m_radix(x): x as m numerals, most significant first."""
    out = []
    for _ in range(m):
        x, d = divmod(x, radix)
        out.append(d)
    assert x == 0
    return out[::-1]


def ff1_encrypt(key: bytes, tweak: bytes, radix: int, x):
    n, t = len(x), len(tweak)
    u = n // 2
    v = n - u
    a, b = list(x[:u]), list(x[u:])
    # b = ceil(ceil(v * log2(radix)) / 8), computed exactly: the bytes of radix^v - 1.
    blen = ((radix ** v - 1).bit_length() + 7) // 8
    d = 4 * math.ceil(blen / 4) + 4
    p = bytes([1, 2, 1]) + radix.to_bytes(3, "big") + bytes([10, u % 256]) \
        + n.to_bytes(4, "big") + t.to_bytes(4, "big")
    for i in range(10):
        q = tweak + bytes((-t - blen - 1) % 16) + bytes([i]) + num(b, radix).to_bytes(blen, "big")
        r = prf(key, p + q)
        s = r
        for j in range(1, math.ceil(d / 16)):
            s += aes_ecb(key, bytes(x ^ y for x, y in zip(r, j.to_bytes(16, "big"))))
        y = int.from_bytes(s[:d], "big")
        m = u if i % 2 == 0 else v
        c = (num(a, radix) + y) % radix ** m
        a, b = b, str_m(c, radix, m)
    return a + b


ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz"

# NIST's FF1 samples (csrc.nist.gov, "FF1samples.pdf"): key, radix, tweak, plaintext, ciphertext.
K128 = "2B7E151628AED2A6ABF7158809CF4F3C"
K192 = K128 + "EF4359D8D580AA4F"
K256 = K192 + "7F036D6F04FC6A94"
T10 = "39383736353433323130"
T36 = "3737373770717273373737"
SAMPLES = [
    (K128, 10, "", "0123456789", "2433477484"),
    (K128, 10, T10, "0123456789", "6124200773"),
    (K128, 36, T36, "0123456789abcdefghi", "a9tv40mll9kdu509eum"),
    (K192, 10, "", "0123456789", "2830668132"),
    (K192, 10, T10, "0123456789", "2496655549"),
    (K192, 36, T36, "0123456789abcdefghi", "xbj3kv35jrawxv32ysr"),
    (K256, 10, "", "0123456789", "6657667009"),
    (K256, 10, T10, "0123456789", "1001623463"),
    (K256, 36, T36, "0123456789abcdefghi", "xs8a0azh2avyalyzuwd"),
]


def pseudonymize_int(k: bytes, value: int, domain: str = "") -> int:
    """SPEC: FF1, radix 2, over the 32 two's-complement bits (most significant first), AES-256
    under HMAC-SHA256(K, "pg_deident/v1/ff1"), tweak utf8(domain)."""
    aes_key = hmac.new(k, b"pg_deident/v1/ff1", hashlib.sha256).digest()
    bits = str_m(value & 0xFFFFFFFF, 2, 32)
    out = num(ff1_encrypt(aes_key, domain.encode("utf-8"), 2, bits), 2)
    return out - (1 << 32) if out >= 1 << 31 else out


def main() -> int:
    ok = True
    for number, (key, radix, tweak, pt, ct) in enumerate(SAMPLES, 1):
        x = [ALPHABET.index(c) for c in pt]
        got = "".join(ALPHABET[d] for d in
                      ff1_encrypt(bytes.fromhex(key), bytes.fromhex(tweak), radix, x))
        status = "ok" if got == ct else "FAILED"
        ok &= got == ct
        print(f"NIST FF1 sample {number}: {got} {status}")
    test_key = bytes(range(32))
    spec = [((0, ""), -532415753), ((1001, ""), 1813204751), ((1001, "hr"), -1331595961),
            ((-2147483648, ""), -1891228647)]
    for (value, domain), expected in spec:
        got = pseudonymize_int(test_key, value, domain)
        status = "ok" if got == expected else f"FAILED (SPEC says {expected})"
        ok &= got == expected
        print(f"pseudonymize_int({value}, '{domain}') = {got} {status}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
