"""DKIM benchmark: python bench/dkim_sign.py [--seconds S] [--rounds N].

Builds bench/send.py's newsletter (about 10 KB, five merge fields) with and without a DKIM
signer, and times the bare RSA-2048 PKCS#1 v1.5 sign of a SHA-256 digest (`rsa_sign_per_s`,
the reference, one core) in the same process, alternating the three in rounds so that the
machine's load falls on all of them alike. Times are CPU seconds of this process
(`time.process_time`), medians over the rounds.

- `dkim_sign_per_s`: whole DKIM signatures of a built 10 KB message per CPU second, in a loop as
  the reference: the body hash after the mailing's prefix, the header hash after the mailing's
  constant headers, the RSA step, the folded header.
- `dkim_ratio` = dkim_sign_per_s / rsa_sign_per_s (target >= 0.9).
- `dkim_cpu_us_per_msg`: what signing adds to a message's build (signed build - unsigned build,
  the cost in a real send); split into `dkim_besides_rsa_us` (the same with the RSA step
  stubbed out) and `rsa_in_build_us` (the RSA step there, colder than in the bare loop).

No database, no network. Last line: one JSON object.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))


def per_cpu_second(fn, seconds: float) -> float:
    count, start = 0, time.process_time()
    while True:
        for _ in range(20):
            fn()
        count += 20
        spent = time.process_time() - start
        if spent >= seconds:
            return count / spent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=1.0, help="CPU seconds per measurement")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mailplatform.settings")
    os.environ.setdefault("DEBUG", "true")  # as bench/benchdb.py: a checkout's generated key
    os.environ.setdefault("SECRET_KEY", "bench-dkim-" + "x" * 32)
    import django

    django.setup()
    from send import template_source

    from delivery.compose import MessageBuilder, Recipient
    from delivery.dkim import DkimSigner, generate_private_key
    from templates.compiler import compile_template

    subject, html = template_source()
    compiled = compile_template(subject=subject, html=html).to_dict()
    pem, _ = generate_private_key()
    signer = DkimSigner("example.com", "bench", pem)
    fields = dict(
        mailing_id=1,
        from_email="news@example.com",
        from_name="Bench",
        reply_to="",
        list_ids=[1],
        kind="marketing",
        send_group="bench",
        extra_headers={},
        compiled=compiled,
    )
    signed_builder = MessageBuilder(**fields, signer=signer)
    unsigned_builder = MessageBuilder(**fields)
    people = [
        {
            "contact": {
                "first_name": f"Ada{n}",
                "last_name": "Lovelace",
                "email": f"ada{n}@example.com",
                "city": "London",
                "company": "Engines",
            },
            "unsubscribe_url": f"https://example.com/delivery/u/{n}/",
        }
        for n in range(100)
    ]
    counter = iter(range(10**12))

    def build(builder):
        n = next(counter)
        return builder.build(Recipient(n + 1, f"ada{n % 100}@example.com", people[n % 100]))

    size = len(build(signed_builder))
    digest = hashlib.sha256(b"bench").digest()
    # One built message's signature inputs, as MessageBuilder.build hands them to the signer: the
    # variable headers' values and the canonical body after the mailing's hashed prefix.
    captured = {}
    real_prepared = signer.signature_prepared

    def capture(prepared, values, body_hash, **kw):
        captured["values"] = values
        return real_prepared(prepared, values, body_hash, **kw)

    signer.signature_prepared = capture
    build(signed_builder)
    del signer.signature_prepared
    prepared = signed_builder._prepared
    text, canonical_text = signed_builder._text.fill_signed(
        ["Ada", "Lovelace", "a@x", "L", "E", "u"], first=False
    )
    rest = canonical_text + signed_builder._canonical_middle
    html, canonical_html = signed_builder._html.fill_signed(["Ada", "Lovelace", "a@x", "L", "E", "u"])
    rest += canonical_html + signed_builder._canonical_tail

    def whole_signature():
        return signer.signature_prepared(prepared, captured["values"], signed_builder._body_hash.digest(rest))

    real_sign = signer.sign_digest
    rsa, sig, signed, unsigned, stubbed = [], [], [], [], []
    for _ in range(args.rounds):
        rsa.append(per_cpu_second(lambda: signer.sign_digest(digest), args.seconds))
        sig.append(per_cpu_second(whole_signature, args.seconds))
        signed.append(per_cpu_second(lambda: build(signed_builder), args.seconds))
        unsigned.append(per_cpu_second(lambda: build(unsigned_builder), args.seconds))
        signer.sign_digest = lambda digest: bytes(256)  # everything but the RSA step
        stubbed.append(per_cpu_second(lambda: build(signed_builder), args.seconds))
        signer.sign_digest = real_sign
    rsa_rate = statistics.median(rsa)
    dkim_rate = statistics.median(sig)
    signed_us = 1e6 / statistics.median(signed)
    unsigned_us = 1e6 / statistics.median(unsigned)
    stubbed_us = 1e6 / statistics.median(stubbed)
    added_us = signed_us - unsigned_us
    print(f"message: {size:,} bytes; build {unsigned_us:.1f} us unsigned, {signed_us:.1f} us signed")
    print(f"bare RSA-2048 sign of a digest: {rsa_rate:,.0f}/s ({1e6 / rsa_rate:.1f} us)")
    print(
        f"whole DKIM signature of a built message: {dkim_rate:,.0f}/s ({1e6 / dkim_rate:.1f} us);"
        f" ratio {dkim_rate / rsa_rate:.3f}"
    )
    print(
        f"in a build: signing adds {added_us:.1f} us, of which {stubbed_us - unsigned_us:.1f} us besides"
        f" the RSA step and {signed_us - stubbed_us:.1f} us the RSA step (bare: {1e6 / rsa_rate:.1f} us)"
    )
    print(
        json.dumps(
            {
                "message_bytes": size,
                "rounds": args.rounds,
                "rsa_sign_per_s": round(rsa_rate, 1),
                "dkim_sign_per_s": round(dkim_rate, 1),
                "dkim_ratio": round(dkim_rate / rsa_rate, 3),
                "dkim_cpu_us_per_msg": round(added_us, 1),
                "dkim_besides_rsa_us": round(stubbed_us - unsigned_us, 1),
                "rsa_in_build_us": round(signed_us - stubbed_us, 1),
                "build_unsigned_us": round(unsigned_us, 1),
                "build_signed_us": round(signed_us, 1),
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
