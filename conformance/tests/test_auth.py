"""mcpgate as an OAuth 2.1 resource server, against a real OpenID provider (issue 11).

npm `oidc-provider` (conformance/idp.py) issues RFC 9068 JWT access tokens for the
resource `https://127.0.0.1:PORT/mcp`; mcpgate terminates TLS (a CA made here) in front
of `demo-upstream --record` and verifies the tokens with the provider's JWKS, fetched
over its URL. Checked on the real binary:

- RFC 9728 metadata at both well-known paths; 401 with `resource_metadata`;
- tokens from client credentials and from authorization code + PKCE are accepted, by
  raw requests and by the Python `mcp` 2.3.0 client over TLS; the SDK's own OAuth
  client discovers the authorization server through mcpgate's metadata and gets in;
- a missing scope gets 403 with a step-up challenge naming every scope needed;
- a token for another resource, a forged, an `alg: none` and a garbage token, and a
  token in the query string are refused with 401 and nothing reaches the upstream;
- the client's `Authorization` never reaches the upstream (its own record); the
  upstream gets a token mcpgate minted for it instead (caller's subject and tenant,
  verifiable with the JWKS on mcpgate's admin listener);
- a legacy session made by one subject is 404 for another subject of the same tenant.
"""

from __future__ import annotations

import base64
import json
import re
import ssl
import sys
import time
from pathlib import Path

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import harness  # noqa: E402
import idp as idp_mod  # noqa: E402
from negative.cases import LEGACY, POST_HEADERS, init, modern, modern_headers, note, req  # noqa: E402
from test_tls import Pki  # noqa: E402

SCOPES = ["mcp:read", "files:write"]


class Edge:
    """oidc-provider, demo-upstream --record, and mcpgate with TLS + [auth.jwt] in front."""

    def __init__(self):
        dir = harness.scratch_dir()
        self.pki = Pki(dir, name="auth test CA")
        cert, key = self.pki.issue("auth-server", ips=["127.0.0.1"], dns=["localhost"], cn="mcpgate")
        self.port = harness.free_port()
        self.resource = f"https://127.0.0.1:{self.port}/mcp"
        self.idp = idp_mod.Idp.start(self.resource, SCOPES)
        self.record = dir / "auth-record.jsonl"
        self.record.touch()
        up = harness.free_port()
        self.admin = harness.free_port()
        # mcpgate's own signing key for the tokens it mints for the upstream.
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        mint_key = dir / "mint-key.pem"
        mint_key.write_bytes(ec.generate_private_key(ec.SECP256R1()).private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
        self.upstream_aud = f"http://127.0.0.1:{up}/mcp"
        self.upstream = harness.Proc("demo-upstream-auth", [harness.demo_upstream_bin(), "--listen",
                                                            f"127.0.0.1:{up}", "--record", self.record])
        self.upstream.wait_port(up)
        template = f'''
[listen]
address = "127.0.0.1:LISTEN_PORT"
[listen.tls]
cert_file = "{cert}"
key_file = "{key}"
[upstream]
url = "http://127.0.0.1:{up}/mcp"
[upstream.auth]
mint = true
mint_key_file = "{mint_key}"
mint_audience = "{self.upstream_aud}"
mint_issuer = "mcpgate-edge"
mint_kid = "edge-1"
[admin]
address = "127.0.0.1:ADMIN_PORT"
[auth]
scopes_mode = "SCOPES_MODE"
[auth.jwt]
issuer = "{self.idp.issuer}"
audiences = ["{self.resource}"]
jwks_url = "{self.idp.jwks_url}"
allow_insecure_jwks_url = true
jwks_min_interval_secs = 1
algorithms = ["RS256", "ES256"]
[auth.oauth]
resource = "{self.resource}"
authorization_servers = ["{self.idp.issuer}"]
scopes_supported = {json.dumps(SCOPES)}
[auth.scopes]
"tools/list" = ["mcp:read"]
"tools/call" = ["mcp:read"]
"tools/call:payload" = ["files:write"]
[tenants.machines]
jwt_subjects = ["{idp_mod.CLIENT_ID}"]
[tenants.people]
jwt_subjects = ["*"]
'''

        def config(port: int, admin: int, mode: str) -> Path:
            return harness.write_config_text(template.replace("LISTEN_PORT", str(port))
                                             .replace("ADMIN_PORT", str(admin)).replace("SCOPES_MODE", mode))

        self.proc = harness.Proc("mcpgate-auth", [harness.mcpgate_bin(), "run", "--config",
                                                  config(self.port, self.admin, "enforce"), "--workers", "2"])
        # The same edge with its scope rules in shadow mode: same audience,
        # same upstream, nothing refused for a missing scope.
        self.shadow_port, self.shadow_admin = harness.free_port(), harness.free_port()
        self.shadow = harness.Proc("mcpgate-auth-shadow", [harness.mcpgate_bin(), "run", "--config",
                                                           config(self.shadow_port, self.shadow_admin, "shadow"),
                                                           "--workers", "1"])
        self.proc.wait_port(self.port, timeout=20)
        self.shadow.wait_port(self.shadow_port, timeout=20)
        self.proc.wait_port(self.admin, timeout=20)
        self.shadow.wait_port(self.shadow_admin, timeout=20)
        self.ctx = ssl.create_default_context(cafile=str(self.pki.ca_file))
        self.client = httpx.Client(verify=self.ctx, timeout=10)

    def stop(self):
        self.client.close()
        self.proc.stop()
        self.shadow.stop()
        self.upstream.stop()
        self.idp.stop()

    def count(self) -> int:
        return len(self.record.read_text().splitlines())

    def post(self, body, headers, token: str | None = None, url: str | None = None) -> httpx.Response:
        h = list(headers) + ([("authorization", f"Bearer {token}")] if token else [])
        return self.client.post(url or self.resource, json=body, headers=h)

    def tools_list(self, token: str | None, url: str | None = None) -> httpx.Response:
        return self.post(modern("tools/list"), modern_headers("tools/list"), token, url)


@pytest.fixture(scope="module")
def edge():
    e = Edge()
    yield e
    e.stop()


def challenge(r: httpx.Response) -> dict[str, str]:
    value = r.headers.get("www-authenticate", "")
    assert value.startswith("Bearer"), value
    return dict(re.findall(r'(\w+)="([^"]*)"', value))


def test_protected_resource_metadata(edge):
    for path in ("/.well-known/oauth-protected-resource/mcp", "/.well-known/oauth-protected-resource"):
        r = edge.client.get(f"https://127.0.0.1:{edge.port}{path}")
        assert r.status_code == 200, r.text
        doc = r.json()
        assert doc["resource"] == edge.resource
        assert doc["authorization_servers"] == [edge.idp.issuer]
        assert doc["bearer_methods_supported"] == ["header"]
        assert doc["scopes_supported"] == SCOPES and "offline_access" not in doc["scopes_supported"]


def test_no_token_gets_401_pointing_at_the_metadata(edge):
    before = edge.count()
    r = edge.tools_list(None)
    assert r.status_code == 401
    c = challenge(r)
    assert c["resource_metadata"] == f"https://127.0.0.1:{edge.port}/.well-known/oauth-protected-resource/mcp"
    assert "error" not in c, "no token presented: no error code (RFC 6750 3.1)"
    assert r.json()["error"]["data"]["rule"] == "missing-token"
    assert edge.count() == before


def test_client_credentials_token_is_accepted(edge):
    token = edge.idp.client_credentials_token("mcp:read")
    before = edge.count()
    r = edge.tools_list(token)
    assert r.status_code == 200, r.text
    assert r.json()["result"]["tools"]
    call = modern("tools/call", {"name": "echo", "arguments": {"text": "hi"}})
    r = edge.post(call, modern_headers("tools/call", "echo"), token)
    assert r.status_code == 200, r.text
    time.sleep(0.1)
    assert edge.count() == before + 2


def test_missing_scope_gets_403_step_up_naming_every_scope(edge):
    token = edge.idp.client_credentials_token("mcp:read")
    before = edge.count()
    call = modern("tools/call", {"name": "payload", "arguments": {"size": 10}})
    r = edge.post(call, modern_headers("tools/call", "payload"), token)
    assert r.status_code == 403, r.text
    c = challenge(r)
    assert c["error"] == "insufficient_scope"
    assert set(c["scope"].split()) == {"files:write", "mcp:read"}, "one challenge names every scope needed"
    assert c["resource_metadata"].endswith("/.well-known/oauth-protected-resource/mcp")
    assert r.json()["error"]["data"]["rule"] == "insufficient-scope"
    assert edge.count() == before
    # With the scope, the same call passes.
    both = edge.idp.client_credentials_token("mcp:read files:write")
    assert edge.post(call, modern_headers("tools/call", "payload"), both).status_code == 200


def test_scope_rules_in_shadow_mode_refuse_nothing_and_count(edge):
    token = edge.idp.client_credentials_token("mcp:read")
    before = edge.count()
    call = modern("tools/call", {"name": "payload", "arguments": {"size": 10}})
    r = edge.post(call, modern_headers("tools/call", "payload"), token,
                  url=f"https://127.0.0.1:{edge.shadow_port}/mcp")
    assert r.status_code == 200, r.text
    time.sleep(0.1)
    assert edge.count() == before + 1, "the call reached the upstream"
    m = httpx.get(f"http://127.0.0.1:{edge.shadow_admin}/metrics").text
    line = [x for x in m.splitlines() if x.startswith("mcpgate_shadow_total{") and 'filter="scopes"' in x]
    assert line and line[0].endswith(" 1") and 'rule="insufficient-scope"' in line[0], m
    for _ in range(40):
        if "shadow mode: would refuse insufficient-scope at params.name: token lacks a scope of: files:write mcp:read" in edge.shadow.log.read_text():
            break
        time.sleep(0.1)
    else:
        raise AssertionError(edge.shadow.log_tail())


def b64(obj: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()


@pytest.mark.parametrize("kind", ["other-audience", "forged-signature", "alg-none", "garbage", "in-query"])
def test_bad_tokens_are_refused_and_nothing_reaches_the_upstream(edge, kind):
    good = edge.idp.client_credentials_token("mcp:read")
    head, payload, sig = good.split(".")
    token, url = good, None
    if kind == "other-audience":
        token = edge.idp.client_credentials_token("mcp:read", resource="https://elsewhere.test/mcp")
    elif kind == "forged-signature":
        claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
        claims["sub"] = "admin"
        token = f"{head}.{b64(claims)}.{sig}"
    elif kind == "alg-none":
        token = f"{b64({'alg': 'none', 'typ': 'at+jwt'})}.{payload}."
    elif kind == "garbage":
        token = "not.a.token"
    elif kind == "in-query":
        url = f"{edge.resource}?access_token={good}"
    before = edge.count()
    r = edge.tools_list(token, url)
    assert r.status_code == 401, r.text
    c = challenge(r)
    assert "resource_metadata" in c
    if kind != "in-query":
        assert c.get("error") == "invalid_token"
    assert good not in r.text and payload not in r.text, "the token is never echoed"
    time.sleep(0.05)
    assert edge.count() == before
    assert good not in edge.proc.log_tail(400), "the token is never logged"


def test_the_client_token_never_reaches_the_upstream_only_mcpgates_own(edge):
    token = edge.idp.auth_code_pkce_token("mcp:read", edge.resource, login="dave")
    before = edge.count()
    assert edge.tools_list(token).status_code == 200
    time.sleep(0.1)
    lines = edge.record.read_text().splitlines()
    assert len(lines) == before + 1, "the upstream recorded the request"
    recorded = "\n".join(lines)
    assert token not in recorded, "the client's token is never passed through"
    rec = json.loads(lines[-1])
    auth = [h[1] for h in rec.get("headers") or [] if h[0].lower() == "authorization"]
    assert len(auth) == 1 and auth[0].startswith("Bearer "), rec
    minted = auth[0][7:]
    # mcpgate's token: for the upstream's audience, carrying the caller, signed
    # with the key whose public half the admin listener publishes.
    jwks = httpx.get(f"http://127.0.0.1:{edge.admin}/.well-known/jwks.json", timeout=5).json()
    assert [k.get("kid") for k in jwks["keys"]] == ["edge-1"]
    header, claims = idp_mod.verify_jwt(minted, jwks)
    assert header["alg"] == "ES256" and header["typ"] == "at+jwt"
    assert claims["iss"] == "mcpgate-edge" and claims["aud"] == edge.upstream_aud
    assert claims["sub"] == "dave" and claims["tenant"] == "people"
    assert claims["exp"] - claims["iat"] == 300


def test_auth_code_pkce_token_and_the_python_sdk_over_tls(edge):
    import anyio
    import httpx2
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client

    token = edge.idp.auth_code_pkce_token("mcp:read", edge.resource, login="alice")
    assert edge.tools_list(token).status_code == 200

    async def run() -> list[str]:
        with anyio.fail_after(60):
            async with httpx2.AsyncClient(verify=edge.ctx, headers={"Authorization": f"Bearer {token}"},
                                          timeout=10) as http:
                async with Client(streamable_http_client(edge.resource, http_client=http), mode="auto") as c:
                    return [t.name for t in (await c.list_tools()).tools]

    assert "echo" in anyio.run(run)


def test_sdk_oauth_flow_discovers_the_server_through_mcpgate(edge):
    import anyio
    import httpx2
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client

    auth, storage = idp_mod.sdk_oauth(edge.resource, "mcpgate auth test", login="carol", scope="mcp:read")

    async def run() -> list[str]:
        with anyio.fail_after(90):
            async with httpx2.AsyncClient(verify=edge.ctx, auth=auth, timeout=10) as http:
                async with Client(streamable_http_client(edge.resource, http_client=http), mode="auto") as c:
                    return [t.name for t in (await c.list_tools()).tools]

    assert "echo" in anyio.run(run)
    assert storage.tokens is not None
    _, claims = idp_mod.decode_jwt(storage.tokens.access_token)
    assert claims["aud"] == edge.resource and claims["sub"] == "carol"


def test_a_session_is_bound_to_its_subject(edge):
    alice = edge.idp.auth_code_pkce_token("mcp:read", edge.resource, login="alice")
    bob = edge.idp.auth_code_pkce_token("mcp:read", edge.resource, login="bob")
    r = edge.post(init(), POST_HEADERS, alice)
    assert r.status_code == 200, r.text
    sid = r.headers["mcp-session-id"]
    h = POST_HEADERS + [("mcp-protocol-version", LEGACY), ("mcp-session-id", sid)]
    assert edge.post(note("notifications/initialized"), h, alice).status_code == 202
    assert edge.post(req("tools/list", 2), h, alice).status_code == 200
    # Same tenant ("people"), another subject: the session does not exist for bob.
    r = edge.post(req("tools/list", 3), h, bob)
    assert r.status_code == 404, r.text
    assert edge.post(req("tools/list", 4), h, alice).status_code == 200


def test_a_new_signing_key_is_fetched_when_a_token_names_it(edge):
    """The issuer restarts with a new key (a new `kid`): mcpgate fetches the JWKS again
    for the unknown kid, at most once per jwks_min_interval_secs, and accepts the token.
    (Last in this module: the provider is replaced for good.)"""
    old_kid = idp_mod.decode_jwt(edge.idp.client_credentials_token("mcp:read"))[0]["kid"]
    port = edge.idp.port
    edge.idp.stop()
    edge.idp = idp_mod.Idp.start(edge.resource, SCOPES, port=port)
    token = edge.idp.client_credentials_token("mcp:read")
    assert idp_mod.decode_jwt(token)[0]["kid"] != old_kid
    time.sleep(1.2)  # past the refetch floor since the last fetch
    r = edge.tools_list(token)
    assert r.status_code == 200, r.text
    assert "keys fetched" in edge.proc.log_tail(200)
