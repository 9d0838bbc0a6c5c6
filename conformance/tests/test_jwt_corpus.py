"""The negative JWT corpus (conformance/corpora/jwt.jsonl) against the real binary.

Each recipe is built into a signed token here (format in conformance/corpora/README.md,
keys in conformance/corpora/jwt-keys/, TEST-ONLY) and sent as a bearer token to mcpgate
running `jwt-keys/auth.toml` in front of `demo-upstream --record`. Every refusal must be
a 401 with `WWW-Authenticate: Bearer error="invalid_token"`, name the corpus's rule in
`error.data.rule`, and leave the upstream's record untouched; every control must pass.
A control sent in the query string is refused too.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import sys
import time
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import harness  # noqa: E402
from negative.cases import modern, modern_headers  # noqa: E402
from test_negative_suite import Recorded  # noqa: E402

CORPORA = harness.ROOT / "conformance/corpora"
KEYS = CORPORA / "jwt-keys"
ISSUER, AUDIENCE = "https://issuer.corpus.test", "https://mcp.corpus.test/mcp"
DEFAULT_ALG = {"rsa-1": "RS256", "rsa-other": "RS256", "ec-1": "ES256", "ed-1": "EdDSA"}


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def private_key(name: str):
    return serialization.load_pem_private_key((KEYS / f"test-only-{name}.pem").read_bytes(), password=None)


def sign(key_name: str, alg: str, data: bytes) -> bytes:
    if key_name == "none":
        return b""
    if key_name.startswith("hmac:"):
        secret = (KEYS / key_name[5:]).read_bytes()
        digest = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}[alg]
        return hmac.new(secret, data, digest).digest()
    key = private_key(key_name)
    if isinstance(key, rsa.RSAPrivateKey):
        return key.sign(data, padding.PKCS1v15(), {"RS256": hashes.SHA256(), "RS384": hashes.SHA384(),
                                                   "RS512": hashes.SHA512()}.get(alg, hashes.SHA256()))
    if isinstance(key, ec.EllipticCurvePrivateKey):
        r, s = decode_dss_signature(key.sign(data, ec.ECDSA(hashes.SHA256())))
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return key.sign(data)
    raise ValueError(f"unknown key {key_name}")


def build(recipe: dict, now: int) -> str:
    key_name = recipe["key"]
    if key_name == "none":
        alg = recipe.get("alg", "none")
    elif key_name.startswith("hmac:"):
        alg = recipe.get("alg", "HS256")
    else:
        alg = recipe.get("alg", DEFAULT_ALG[key_name])
    header = {"alg": alg, "typ": "at+jwt"}
    if key_name != "none" and not key_name.startswith("hmac:"):
        header["kid"] = key_name
    claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": "corpus-user", "client_id": "corpus-client",
              "scope": "files:read"}
    times = {"iat": 0, "exp": 600}
    for target, over in ((header, recipe.get("header")), (claims, recipe.get("claims")), (times, recipe.get("times"))):
        for k, v in (over or {}).items():
            if v is None:
                target.pop(k, None)
            else:
                target[k] = v
    claims.update({k: now + v for k, v in times.items()})
    if recipe.get("pad_bytes"):
        claims["pad"] = "x" * recipe["pad_bytes"]
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
    token = f"{signing_input}.{b64(sign(key_name, alg, signing_input.encode()))}"
    mutate = recipe.get("mutate")
    if mutate == "tamper-signature":
        head, payload, sig = token.split(".")
        token = f"{head}.{payload}.{('B' if sig[0] == 'A' else 'A') + sig[1:]}"
    elif mutate == "bad-base64":
        head, payload, sig = token.split(".")
        token = f"{head}.{payload[0]}*{payload[1:]}.{sig}"
    elif mutate == "two-parts":
        token = token.rsplit(".", 1)[0]
    elif mutate and mutate.startswith("append:"):
        token += mutate[7:]
    return token


RECIPES = [json.loads(l) for l in (CORPORA / "jwt.jsonl").read_text().splitlines() if l.strip()]


@pytest.fixture(scope="module")
def rec():
    auth = (KEYS / "auth.toml").read_text().replace('jwks_file = "jwks.json"', f'jwks_file = "{KEYS / "jwks.json"}"')
    r = Recorded(harness.scratch_dir(), auth + '\n[tenants.corpus]\njwt_subjects = ["*"]\n', workers=1)
    yield r
    r.stop()


def send(rec: Recorded, token: str, query: str = "") -> httpx.Response:
    headers = modern_headers("tools/list") + [("authorization", f"Bearer {token}")]
    return rec.client.post(rec.url + query, json=modern("tools/list"), headers=headers)


def test_the_corpus_through_mcpgate(rec):
    refused = accepted = 0
    problems = []
    for recipe in RECIPES:
        token = build(recipe, int(time.time()))
        before = rec.count()
        r = send(rec, token)
        time.sleep(0.02)
        reached = rec.count() - before
        want = recipe["expect_rule"]
        if want is None:
            if r.status_code == 200 and reached == 1:
                accepted += 1
            else:
                problems.append(f"{recipe['name']}: control got {r.status_code} {r.text[:200]}")
            continue
        if want == "too-large" and r.status_code == 431 and reached == 0:
            # Through the binary an oversized token is refused earlier, by the
            # header guard: its header line is over [headers] max_field_bytes.
            refused += 1
            continue
        challenge = r.headers.get("www-authenticate", "")
        rule = r.json()["error"].get("data", {}).get("rule") if r.headers.get("content-type", "").startswith("application/json") else None
        if r.status_code == 401 and 'error="invalid_token"' in challenge and rule == want and reached == 0 \
                and token not in r.text:
            refused += 1
        else:
            problems.append(f"{recipe['name']}: {r.status_code} rule={rule} want={want} reached={reached} "
                            f"challenge={challenge!r}")
    controls = sum(1 for r in RECIPES if r["expect_rule"] is None)
    print(f"\njwt corpus (end to end): refused {refused}/{len(RECIPES) - controls}, controls accepted {accepted}/{controls}")
    assert not problems, "\n".join(problems)


def test_a_valid_token_in_the_query_string_is_refused(rec):
    control = next(r for r in RECIPES if r["expect_rule"] is None)
    token = build(control, int(time.time()))
    before = rec.count()
    r = send(rec, token, f"?access_token={token}")
    assert r.status_code == 401 and r.json()["error"]["data"]["rule"] == "token-in-query"
    assert rec.count() == before
