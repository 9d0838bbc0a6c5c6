"""A real OpenID provider for the tests: npm `oidc-provider` 9.13.3 (conformance/idp/server.mjs).

    idp = Idp.start("https://127.0.0.1:8443/mcp", ["mcp:read", "mcp:write"])
    token = idp.client_credentials_token("mcp:read")                  # aud = the resource above
    token = idp.client_credentials_token("mcp:read", resource=other)  # aud = other
    token = idp.auth_code_pkce_token("mcp:read", resource)            # DCR + /auth + login + consent
    idp.stop()

Access tokens are RFC 9068 JWTs (header `typ: at+jwt`, `kid` of the key at `idp.jwks_url`)
with `iss` = `idp.issuer` (`http://127.0.0.1:PORT`, no trailing slash), `aud` = the resource
(one string), `scope` (space-separated, only the requested scopes the provider knows;
unknown ones are dropped, not refused), `client_id`, `sub` (the client id for client
credentials, the login name for the authorization code flow), `jti`, `iat`, `exp`.

For the MCP SDK's own OAuth client (`mcp.client.auth.OAuthClientProvider`):
`sdk_handlers()` gives the (redirect_handler, callback_handler) pair that drives the
authorization URL headlessly through the provider's login and consent forms.
`authorize(url)` / `authorize_url_handler(url)` do the same for any authorization URL.

Needs `scripts/bootstrap.sh node npm`. The process runs through `harness.Proc` (own
process group, log in `harness.scratch_dir()`).
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import re
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Any, NamedTuple
from urllib.parse import parse_qs, urlencode, urljoin, urlsplit

import harness
import httpx

SERVER = harness.ROOT / "conformance/idp/server.mjs"
OIDC_PROVIDER_DIR = harness.NPM / "oidc-provider-9.13.3"
CLIENT_ID = "mcpgate-test"
DEFAULT_LOGIN = "mcpgate-user"
# Where the authorization server sends the browser back; nothing listens there: the
# driver stops at the redirect and reads the code from its Location.
DEFAULT_REDIRECT_URI = "http://127.0.0.1:1/callback"
HTTP_TIMEOUT = 10.0


class IdpError(RuntimeError):
    """A request to the provider failed (status and body in the message)."""


class AuthorizationError(IdpError):
    """The authorization flow ended without a code (error redirect, unexpected page, too many steps)."""


class AuthorizationResponse(NamedTuple):
    """The parameters of the redirect back to the client."""

    code: str
    state: str | None
    iss: str | None


def _origin(url: str) -> tuple[str, str, int | None]:
    u = urlsplit(url)
    return (u.scheme, (u.hostname or "").lower(), u.port)


def _excerpt(resp: httpx.Response, n: int = 600) -> str:
    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", resp.text))
    return f"HTTP {resp.status_code} at {resp.request.url}: {text.strip()[:n]}"


def _form(page: str) -> tuple[str, dict[str, str]]:
    """The action and hidden inputs of the first form of an interaction page."""
    m = re.search(r"<form\b[^>]*\baction=\"([^\"]*)\"", page)
    if not m:
        raise AuthorizationError(f"no form on the interaction page: {page[:300]!r}")
    fields = {
        html.unescape(name): html.unescape(value)
        for name, value in re.findall(r"<input\b[^>]*\bname=\"([^\"]*)\"[^>]*\bvalue=\"([^\"]*)\"", page)
    }
    return html.unescape(m.group(1)), fields


def authorize(url: str, login: str = DEFAULT_LOGIN, *, timeout: float = HTTP_TIMEOUT,
              max_steps: int = 12) -> AuthorizationResponse:
    """Drive an authorization URL of this provider headlessly, as a browser would: follow its
    redirects, sign in on the devInteractions login form as `login` (any password), confirm
    the consent form, and return the parameters of the redirect that leaves the provider
    (to the client's redirect_uri, which is not contacted). An error redirect raises."""
    provider = _origin(url)
    deadline = time.monotonic() + timeout * 2
    with httpx.Client(follow_redirects=False, timeout=timeout) as http:
        resp = http.get(url)
        for _ in range(max_steps):
            if time.monotonic() > deadline:
                break
            if resp.is_redirect:
                target = urljoin(str(resp.url), resp.headers["location"])
                if _origin(target) != provider:
                    return _redirect_params(target)
                resp = http.get(target)
                continue
            if resp.status_code == 200 and "<form" in resp.text:
                action, fields = _form(resp.text)
                prompt = fields.get("prompt")
                if prompt == "login":
                    data = {"prompt": "login", "login": login, "password": secrets.token_urlsafe(8)}
                elif prompt == "consent":
                    data = {"prompt": "consent"}
                else:
                    raise AuthorizationError(f"unknown interaction prompt {prompt!r}: {_excerpt(resp)}")
                resp = http.post(urljoin(str(resp.url), action), data=data)
                continue
            raise AuthorizationError(f"authorization did not redirect back: {_excerpt(resp)}")
    raise AuthorizationError(f"authorization did not finish within {max_steps} steps / {timeout * 2}s")


def _redirect_params(target: str) -> AuthorizationResponse:
    u = urlsplit(target)
    params = {k: v[0] for k, v in parse_qs(u.query).items()}
    params.update({k: v[0] for k, v in parse_qs(u.fragment).items()})
    if "error" in params:
        raise AuthorizationError(
            f"authorization error redirect: {params['error']}: {params.get('error_description', '')}"
        )
    if "code" not in params:
        raise AuthorizationError(f"redirect without a code: {target}")
    return AuthorizationResponse(params["code"], params.get("state"), params.get("iss"))


def authorize_url_handler(url: str, login: str = DEFAULT_LOGIN) -> tuple[str, str | None]:
    """`authorize(url)` as (code, state). The MCP SDK also wants the RFC 9207 `iss` this
    provider sends (it advertises authorization_response_iss_parameter_supported): use
    `sdk_handlers()` with the SDK."""
    r = authorize(url, login)
    return r.code, r.state


def sdk_handlers(login: str = DEFAULT_LOGIN) -> tuple[Callable[[str], Awaitable[None]], Callable[[], Awaitable[Any]]]:
    """(redirect_handler, callback_handler) for `mcp.client.auth.OAuthClientProvider`: the
    first drives the authorization URL (in a worker thread), the second returns its
    `AuthorizationCodeResult` (code, state, iss)."""
    import anyio
    from mcp.shared.auth import AuthorizationCodeResult

    results: list[AuthorizationResponse] = []

    async def redirect_handler(url: str) -> None:
        results.append(await anyio.to_thread.run_sync(lambda: authorize(url, login)))

    async def callback_handler() -> AuthorizationCodeResult:
        if not results:
            raise AuthorizationError("callback_handler called before redirect_handler")
        r = results.pop()
        return AuthorizationCodeResult(code=r.code, state=r.state, iss=r.iss)

    return redirect_handler, callback_handler


class MemoryStorage:
    """The SDK's token storage, in memory: what the flow registered and obtained."""

    def __init__(self) -> None:
        self.tokens: Any = None
        self.client: Any = None

    async def get_tokens(self) -> Any:
        return self.tokens

    async def set_tokens(self, tokens: Any) -> None:
        self.tokens = tokens

    async def get_client_info(self) -> Any:
        return self.client

    async def set_client_info(self, client_info: Any) -> None:
        self.client = client_info


def sdk_oauth(server_url: str, client_name: str, login: str = DEFAULT_LOGIN,
              scope: str | None = None) -> tuple[Any, MemoryStorage]:
    """An `mcp.client.auth.OAuthClientProvider` for `server_url` that registers itself,
    authorizes headlessly as `login` (`sdk_handlers`) and keeps what it gets in the
    returned storage."""
    from mcp.client.auth import OAuthClientProvider
    from mcp.shared.auth import OAuthClientMetadata

    storage = MemoryStorage()
    redirect_handler, callback_handler = sdk_handlers(login=login)
    provider = OAuthClientProvider(
        server_url=server_url,
        client_metadata=OAuthClientMetadata(client_name=client_name, redirect_uris=[DEFAULT_REDIRECT_URI],
                                            scope=scope),
        storage=storage,
        redirect_handler=redirect_handler,
        callback_handler=callback_handler,
    )
    return provider, storage


def pkce_pair() -> tuple[str, str]:
    """(code_verifier, S256 code_challenge)."""
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


class Idp:
    """A started conformance/idp/server.mjs."""

    def __init__(self, proc: harness.Proc, port: int, issuer: str, resource: str, scopes: list[str],
                 client_secret: str, metadata: dict[str, Any], alg: str):
        self.proc, self.port, self.alg = proc, port, alg
        self.resource, self.scopes = resource, list(scopes)
        self.client_id, self.client_secret = CLIENT_ID, client_secret
        self._issuer = issuer
        self.metadata = metadata  # /.well-known/openid-configuration

    @classmethod
    def start(cls, resource: str, scopes: list[str], *, alg: str = "RS256", ttl: int = 600,
              timeout: float = 30.0, port: int | None = None) -> Idp:
        """Start the provider on a free loopback port (or `port`: the same issuer again,
        with a new signing key). `resource`: the default resource (the `aud` of tokens
        requested without one); any other absolute URL may be requested as well, with the
        same `scopes`. `alg`: RS256 or ES256. `ttl`: access token lifetime (s)."""
        if not harness.NODE22.exists() or not (OIDC_PROVIDER_DIR / "node_modules/oidc-provider").is_dir():
            raise FileNotFoundError(f"{harness.NODE22} or {OIDC_PROVIDER_DIR} missing: run scripts/bootstrap.sh node npm")
        port = port or harness.free_port()
        secret = secrets.token_urlsafe(32)
        proc = harness.Proc("idp", [
            harness.NODE22, SERVER, "--port", str(port), "--resource", resource, "--scopes", " ".join(scopes),
            "--client-id", CLIENT_ID,
            # "=" form: a random secret may start with "-", which would read as an option.
            f"--client-secret={secret}", "--alg", alg, "--ttl", str(ttl),
        ])
        try:
            issuer = cls._wait_ready(proc, timeout)
            resp = httpx.get(f"{issuer}/.well-known/openid-configuration", timeout=HTTP_TIMEOUT)
            resp.raise_for_status()
            metadata = resp.json()
            if metadata.get("issuer") != issuer:
                raise IdpError(f"discovery names issuer {metadata.get('issuer')!r}, expected {issuer!r}")
        except BaseException:
            proc.stop()
            raise
        return cls(proc, port, issuer, resource, scopes, secret, metadata, alg)

    @staticmethod
    def _wait_ready(proc: harness.Proc, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            m = re.search(r"^ready (\S+)$", proc.log.read_text(errors="replace"), re.M)
            if m:
                return m.group(1)
            if proc.popen.poll() is not None:
                raise RuntimeError(f"idp exited with {proc.popen.returncode}:\n{proc.log_tail()}")
            time.sleep(0.05)
        raise RuntimeError(f"idp did not print `ready` within {timeout}s:\n{proc.log_tail()}")

    # --- where things are ---

    @property
    def issuer(self) -> str:
        return self._issuer

    @property
    def jwks_url(self) -> str:
        return self.metadata["jwks_uri"]

    @property
    def token_endpoint(self) -> str:
        return self.metadata["token_endpoint"]

    @property
    def authorization_endpoint(self) -> str:
        return self.metadata["authorization_endpoint"]

    @property
    def registration_endpoint(self) -> str:
        return self.metadata["registration_endpoint"]

    def jwks(self) -> dict[str, Any]:
        resp = httpx.get(self.jwks_url, timeout=HTTP_TIMEOUT)
        resp.raise_for_status()
        return resp.json()

    # --- tokens ---

    def _token(self, data: dict[str, str], auth: tuple[str, str] | None = None) -> dict[str, Any]:
        resp = httpx.post(self.token_endpoint, data=data, auth=auth, timeout=HTTP_TIMEOUT)
        if resp.status_code != 200:
            raise IdpError(f"token request ({data.get('grant_type')}) failed: {_excerpt(resp)}")
        return resp.json()

    def client_credentials_token(self, scope: str, resource: str | None = None) -> str:
        """An access token for the pre-registered confidential client `mcpgate-test`
        (client_secret_basic); `resource` None: the provider's default resource."""
        data = {"grant_type": "client_credentials", "scope": scope}
        if resource is not None:
            data["resource"] = resource
        return self._token(data, auth=(self.client_id, self.client_secret))["access_token"]

    def register_public_client(self, redirect_uri: str = DEFAULT_REDIRECT_URI) -> str:
        """Dynamic client registration (RFC 7591) of a public client (no secret); its client_id."""
        body = {
            "redirect_uris": [redirect_uri],
            "token_endpoint_auth_method": "none",
            "grant_types": ["authorization_code"],
            "response_types": ["code"],
            "application_type": "native",
            "client_name": "mcpgate conformance",
        }
        resp = httpx.post(self.registration_endpoint, json=body, timeout=HTTP_TIMEOUT)
        if resp.status_code != 201:
            raise IdpError(f"client registration failed: {_excerpt(resp)}")
        return resp.json()["client_id"]

    def authorization_url(self, client_id: str, scope: str, resource: str, code_challenge: str, state: str,
                          redirect_uri: str = DEFAULT_REDIRECT_URI) -> str:
        params = {
            "response_type": "code", "client_id": client_id, "redirect_uri": redirect_uri, "scope": scope,
            "resource": resource, "state": state, "code_challenge": code_challenge, "code_challenge_method": "S256",
        }
        return f"{self.authorization_endpoint}?{urlencode(params)}"

    def exchange_code(self, client_id: str, code: str, code_verifier: str, resource: str,
                      redirect_uri: str = DEFAULT_REDIRECT_URI) -> dict[str, Any]:
        """The token response for an authorization code (public client: client_id, no secret)."""
        return self._token({
            "grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri,
            "client_id": client_id, "code_verifier": code_verifier, "resource": resource,
        })

    def auth_code_pkce_token(self, scope: str, resource: str, login: str = DEFAULT_LOGIN) -> str:
        """Authorization code + PKCE (S256) end to end: register a public client, drive /auth
        through the login (as `login`) and consent forms, exchange the code with the verifier."""
        client_id = self.register_public_client()
        verifier, challenge = pkce_pair()
        state = secrets.token_urlsafe(16)
        r = authorize(self.authorization_url(client_id, scope, resource, challenge, state), login)
        if r.state != state:
            raise AuthorizationError(f"state mismatch: {r.state!r} != {state!r}")
        if r.iss != self.issuer:
            raise AuthorizationError(f"authorization response iss {r.iss!r} != {self.issuer!r}")
        return self.exchange_code(client_id, r.code, verifier, resource)["access_token"]

    def stop(self) -> None:
        self.proc.stop()

    def __enter__(self) -> Idp:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


# --- JWS decoding and verification (cryptography only), for tests ---


def b64url_decode(s: str) -> bytes:
    if not re.fullmatch(r"[A-Za-z0-9_-]*", s):
        raise ValueError("not base64url")
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def decode_jwt(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(header, payload) of a compact JWS, unverified."""
    parts = token.split(".")
    if len(parts) != 3:
        raise ValueError(f"a compact JWS has 3 parts, this has {len(parts)}")
    return json.loads(b64url_decode(parts[0])), json.loads(b64url_decode(parts[1]))


def verify_jwt(token: str, jwks: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(header, payload) when the signature verifies with the JWKS key named by `kid`
    (RS256 or ES256); raises otherwise (cryptography's InvalidSignature, or ValueError)."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
    from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

    header, payload = decode_jwt(token)
    keys = [k for k in jwks.get("keys", []) if k.get("kid") == header.get("kid")]
    if len(keys) != 1:
        raise ValueError(f"kid {header.get('kid')!r} names {len(keys)} keys in the JWKS")
    jwk = keys[0]
    signing_input, sig = token.rsplit(".", 1)
    signature = b64url_decode(sig)
    as_int = lambda field: int.from_bytes(b64url_decode(jwk[field]), "big")  # noqa: E731
    alg = header.get("alg")
    if jwk.get("alg") not in (None, alg):
        raise ValueError(f"header alg {alg!r} is not the key's alg {jwk.get('alg')!r}")
    if alg == "RS256" and jwk.get("kty") == "RSA":
        key = rsa.RSAPublicNumbers(as_int("e"), as_int("n")).public_key()
        key.verify(signature, signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
    elif alg == "ES256" and jwk.get("kty") == "EC" and jwk.get("crv") == "P-256":
        if len(signature) != 64:
            raise ValueError("ES256 signature is not 64 bytes")
        key = ec.EllipticCurvePublicNumbers(as_int("x"), as_int("y"), ec.SECP256R1()).public_key()
        der = encode_dss_signature(int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big"))
        key.verify(der, signing_input.encode(), ec.ECDSA(hashes.SHA256()))
    else:
        raise ValueError(f"alg {alg!r} with a {jwk.get('kty')} key is not supported here")
    return header, payload


__all__ = [
    "AuthorizationError", "AuthorizationResponse", "Idp", "IdpError", "authorize", "authorize_url_handler",
    "b64url_decode", "decode_jwt", "pkce_pair", "sdk_handlers", "verify_jwt",
]
