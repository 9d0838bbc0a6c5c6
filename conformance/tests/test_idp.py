"""The local OpenID provider (npm oidc-provider, conformance/idp/) issues what the
OAuth resource-server tests rely on: RFC 9068 JWT access tokens (`typ: at+jwt`) with the
issuer, the requested resource as `aud` and the requested scope, signed by a key of its
JWKS, from client credentials and from authorization code + PKCE driven headlessly, and
the MCP SDK's own OAuth client completes its flow against it with `idp.sdk_handlers()`.

Tokens are decoded and verified here with `cryptography` only (idp.verify_jwt)."""

from __future__ import annotations

import base64
import json
import os
import time

import harness
import httpx
import pytest
from cryptography.exceptions import InvalidSignature

import idp as idp_mod
from idp import Idp, IdpError, b64url_decode, decode_jwt, verify_jwt

RESOURCE = "https://127.0.0.1:8443/mcp"
OTHER = "https://other.example/mcp"
SCOPES = ["mcp:read", "mcp:write", "files:write"]

if not (harness.NODE22.exists() and (idp_mod.OIDC_PROVIDER_DIR / "node_modules/oidc-provider").is_dir()):
    # `make test` (MCPGATE_REQUIRED=1) runs bootstrap first: there a missing install is a failure.
    _why = f"{harness.NODE22} or {idp_mod.OIDC_PROVIDER_DIR} missing: run scripts/bootstrap.sh node npm"
    if os.environ.get("MCPGATE_REQUIRED") == "1":
        pytest.fail(_why, pytrace=False)
    pytest.skip(_why, allow_module_level=True)


@pytest.fixture(scope="module", params=["RS256", "ES256"])
def idp(request):
    provider = Idp.start(RESOURCE, SCOPES, alg=request.param, timeout=30)
    try:
        yield provider
    finally:
        provider.stop()
        assert provider.proc.popen.poll() is not None, "idp still running after stop()"


@pytest.fixture(scope="module")
def jwks(idp):
    return idp.jwks()


def check_access_token(token: str, idp: Idp, jwks: dict, aud: str, scope: str) -> dict:
    header, payload = verify_jwt(token, jwks)
    assert header["typ"] == "at+jwt"
    assert header["alg"] == idp.alg
    assert payload["iss"] == idp.issuer
    assert payload["aud"] == aud
    assert payload["scope"] == scope
    now = time.time()
    assert payload["iat"] <= now + 5 and payload["exp"] > now
    assert payload["jti"] and payload["client_id"] and payload["sub"]
    return payload


def test_discovery(idp):
    m = idp.metadata
    assert idp.issuer == f"http://127.0.0.1:{idp.port}" == m["issuer"]
    assert idp.jwks_url == f"{idp.issuer}/jwks"
    assert idp.token_endpoint == f"{idp.issuer}/token"
    assert m["code_challenge_methods_supported"] == ["S256"]
    assert m["response_types_supported"] == ["code"]
    assert {"authorization_code", "client_credentials"} <= set(m["grant_types_supported"])
    assert "offline_access" not in m["scopes_supported"]
    assert set(SCOPES) <= set(m["scopes_supported"])
    assert m["authorization_response_iss_parameter_supported"] is True
    assert m["registration_endpoint"].startswith(idp.issuer)


def test_jwks_has_only_public_keys(idp, jwks):
    assert len(jwks["keys"]) == 1
    (key,) = jwks["keys"]
    assert key["use"] == "sig" and key["kid"]
    assert not {"d", "p", "q", "dp", "dq", "qi"} & set(key), "private key material in the JWKS"


def test_client_credentials_default_resource(idp, jwks):
    token = idp.client_credentials_token("mcp:read")
    payload = check_access_token(token, idp, jwks, aud=RESOURCE, scope="mcp:read")
    assert payload["client_id"] == payload["sub"] == "mcpgate-test"


def test_client_credentials_named_resource_and_scopes(idp, jwks):
    token = idp.client_credentials_token("mcp:read files:write", resource=RESOURCE)
    check_access_token(token, idp, jwks, aud=RESOURCE, scope="mcp:read files:write")


def test_client_credentials_other_resource(idp, jwks):
    token = idp.client_credentials_token("mcp:write", resource=OTHER)
    check_access_token(token, idp, jwks, aud=OTHER, scope="mcp:write")


def test_client_credentials_unknown_scope_is_dropped(idp, jwks):
    # oidc-provider drops scopes the resource server does not offer instead of refusing them.
    token = idp.client_credentials_token("mcp:read not-a-scope")
    check_access_token(token, idp, jwks, aud=RESOURCE, scope="mcp:read")


def test_client_credentials_wrong_secret_refused(idp):
    resp = httpx.post(idp.token_endpoint, data={"grant_type": "client_credentials", "scope": "mcp:read"},
                      auth=(idp.client_id, "wrong"), timeout=10)
    assert resp.status_code == 401
    assert resp.json()["error"] == "invalid_client"


def test_auth_code_pkce(idp, jwks):
    token = idp.auth_code_pkce_token("mcp:read mcp:write", RESOURCE, login="alice")
    payload = check_access_token(token, idp, jwks, aud=RESOURCE, scope="mcp:read mcp:write")
    assert payload["sub"] == "alice"
    assert payload["client_id"] != "mcpgate-test"  # the dynamically registered client


def test_auth_code_pkce_other_resource(idp, jwks):
    token = idp.auth_code_pkce_token("mcp:read", OTHER)
    check_access_token(token, idp, jwks, aud=OTHER, scope="mcp:read")


def test_auth_code_wrong_verifier_refused(idp):
    client_id = idp.register_public_client()
    verifier, challenge = idp_mod.pkce_pair()
    url = idp.authorization_url(client_id, "mcp:read", RESOURCE, challenge, state="s1")
    code, state = idp_mod.authorize_url_handler(url)
    assert state == "s1"
    other_verifier, _ = idp_mod.pkce_pair()
    with pytest.raises(IdpError, match="invalid_grant"):
        idp.exchange_code(client_id, code, other_verifier, RESOURCE)
    # A failed PKCE check does not spend the code; the right verifier then gets a token,
    # and the code cannot be used again.
    assert idp.exchange_code(client_id, code, verifier, RESOURCE)["access_token"]
    with pytest.raises(IdpError, match="invalid_grant"):
        idp.exchange_code(client_id, code, verifier, RESOURCE)


def test_auth_code_without_pkce_refused(idp):
    client_id = idp.register_public_client()
    url = idp.authorization_url(client_id, "mcp:read", RESOURCE, "x", state="s")
    url = url.replace("&code_challenge=x&code_challenge_method=S256", "")
    assert "code_challenge" not in url
    with pytest.raises(idp_mod.AuthorizationError, match="invalid_request"):
        idp_mod.authorize(url)


def test_verifier_rejects_tampering(idp, jwks):
    token = idp.client_credentials_token("mcp:read")
    head, body, sig = token.split(".")
    claims = json.loads(b64url_decode(body))
    claims["aud"] = OTHER
    forged_body = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    with pytest.raises(InvalidSignature):
        verify_jwt(f"{head}.{forged_body}.{sig}", jwks)
    assert decode_jwt(f"{head}.{forged_body}.{sig}")[1]["aud"] == OTHER


def test_mcp_sdk_oauth_flow(idp, jwks):
    """mcp 2.3.0's OAuthClientProvider against a stand-in protected resource (RFC 9728 metadata,
    401 challenge) whose authorization server is this provider: discovery, dynamic registration,
    authorization (headless, sdk_handlers), code exchange with `resource`; the retried request
    carries a token the resource accepts."""
    import anyio
    import httpx2

    mcp_url = "http://mcp.test/mcp"
    prm_url = "http://mcp.test/.well-known/oauth-protected-resource/mcp"
    seen: list[dict] = []

    def resource_server(request: httpx2.Request) -> httpx2.Response:
        if request.url.path == "/.well-known/oauth-protected-resource/mcp":
            return httpx2.Response(200, json={
                "resource": mcp_url, "authorization_servers": [idp.issuer],
                "scopes_supported": ["mcp:read"], "bearer_methods_supported": ["header"],
            })
        if request.url.path != "/mcp":
            return httpx2.Response(404)
        auth = request.headers.get("authorization", "")
        if auth.startswith("Bearer "):
            header, payload = verify_jwt(auth[7:], jwks)
            if header["typ"] == "at+jwt" and payload["iss"] == idp.issuer and payload["aud"] == mcp_url:
                seen.append(payload)
                return httpx2.Response(200, json={"ok": True})
        return httpx2.Response(401, headers={"WWW-Authenticate": f'Bearer resource_metadata="{prm_url}"'})

    class Router(httpx2.AsyncBaseTransport):
        def __init__(self) -> None:
            self.real = httpx2.AsyncHTTPTransport()
            self.mock = httpx2.MockTransport(resource_server)

        async def handle_async_request(self, request):
            if request.url.host == "mcp.test":
                return await self.mock.handle_async_request(request)
            return await self.real.handle_async_request(request)

        async def aclose(self) -> None:
            await self.real.aclose()

    auth, storage = idp_mod.sdk_oauth(mcp_url, "mcpgate idp test", login="bob")

    async def run() -> httpx2.Response:
        with anyio.fail_after(60):
            async with httpx2.AsyncClient(transport=Router(), auth=auth, timeout=10) as client:
                return await client.get(mcp_url)

    resp = anyio.run(run)
    assert resp.status_code == 200, resp.text
    assert len(seen) == 1
    payload = seen[0]
    assert payload["sub"] == "bob" and payload["scope"] == "mcp:read"
    assert storage.client is not None and payload["client_id"] == storage.client.client_id
    assert storage.tokens is not None and storage.tokens.refresh_token is None
    check_access_token(storage.tokens.access_token, idp, jwks, aud=mcp_url, scope="mcp:read")
