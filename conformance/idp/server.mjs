// A real OpenID provider for the tests: npm `oidc-provider` (OpenID-certified), pinned in
// scripts/npm-locks/oidc-provider-9.13.3 and installed by scripts/bootstrap.sh into
// .cache/npm/oidc-provider-9.13.3 (override with OIDC_PROVIDER_DIR=<prefix dir>).
//
//   node22 conformance/idp/server.mjs --port P --resource URL [--scopes "a b"]
//          [--client-id ID] [--client-secret S] [--alg RS256|ES256] [--ttl SECONDS]
//
// Prints `ready http://127.0.0.1:P` on stdout once it listens; SIGTERM/SIGINT end it.
// Configuration (test use only: plain HTTP on loopback, in-memory storage, devInteractions):
//  - issuer http://127.0.0.1:P, signing key (RS256 or ES256) generated at start, served at /jwks;
//  - Resource Indicators (RFC 8707): any absolute http(s) URL is a resource server that accepts
//    the --scopes; its access tokens are JWTs (RFC 9068, header `typ: at+jwt`) with `aud` = that
//    URL. A request naming no resource gets the --resource one;
//  - client_credentials for the pre-registered confidential client --client-id/--client-secret
//    (client_secret_basic);
//  - authorization code with PKCE (S256, required for every client), open dynamic client
//    registration (RFC 7591) at /reg, the built-in login/consent forms (devInteractions:
//    any login name, any password), RFC 9207 `iss` in the authorization response;
//  - no refresh tokens (`offline_access` is not offered).
import crypto from "node:crypto";
import http from "node:http";
import path from "node:path";
import { parseArgs } from "node:util";
import { fileURLToPath, pathToFileURL } from "node:url";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const providerDir = process.env.OIDC_PROVIDER_DIR ?? path.join(root, ".cache/npm/oidc-provider-9.13.3");

function fail(msg) {
  process.stderr.write(`idp: ${msg}\n`);
  process.exit(2);
}

let args;
try {
  ({ values: args } = parseArgs({
    options: {
      port: { type: "string" },
      resource: { type: "string" },
      scopes: { type: "string", default: "" },
      "client-id": { type: "string", default: "mcpgate-test" },
      "client-secret": { type: "string" },
      alg: { type: "string", default: "RS256" },
      ttl: { type: "string", default: "600" },
    },
    strict: true,
  }));
} catch (e) {
  fail(e.message);
}

const port = Number(args.port);
if (!Number.isInteger(port) || port <= 0 || port > 65535) fail("--port P is required (1-65535)");
const httpUrl = (s) => {
  const u = URL.parse(s ?? "");
  return u && (u.protocol === "http:" || u.protocol === "https:") && !u.hash ? u.href : null;
};
// Used verbatim (tokens carry the resource exactly as requested): give it as clients send it.
const resource = args.resource;
if (!httpUrl(resource)) fail("--resource URL is required: an absolute http(s) URL without fragment");
const scopes = args.scopes.split(" ").filter(Boolean);
for (const s of scopes) {
  if (!/^[\x21\x23-\x5B\x5D-\x7E]+$/.test(s)) fail(`--scopes: invalid scope token ${JSON.stringify(s)}`);
  if (s === "openid" || s === "offline_access") fail(`--scopes: ${s} is not a resource scope`);
}
if (!["RS256", "ES256"].includes(args.alg)) fail("--alg must be RS256 or ES256");
const ttl = Number(args.ttl);
if (!Number.isSafeInteger(ttl) || ttl <= 0) fail("--ttl must be a positive integer (seconds)");
const clientId = args["client-id"];
let clientSecret = args["client-secret"];
if (!clientSecret) {
  clientSecret = crypto.randomBytes(32).toString("base64url");
  process.stderr.write(`idp: client ${clientId} secret ${clientSecret}\n`);
}

const { default: Provider } = await import(
  pathToFileURL(path.join(providerDir, "node_modules/oidc-provider/lib/index.js")).href
).catch((e) => fail(`cannot load oidc-provider from ${providerDir} (run scripts/bootstrap.sh npm): ${e.message}`));

// The signing key, made fresh at every start.
const keyPair =
  args.alg === "RS256"
    ? crypto.generateKeyPairSync("rsa", { modulusLength: 2048 })
    : crypto.generateKeyPairSync("ec", { namedCurve: "P-256" });
const jwk = keyPair.privateKey.export({ format: "jwk" });
const kid = crypto.randomBytes(8).toString("hex");

const issuer = `http://127.0.0.1:${port}`;
const resourceScope = scopes.join(" ");

const provider = new Provider(issuer, {
  clients: [
    {
      client_id: clientId,
      client_secret: clientSecret,
      grant_types: ["client_credentials"],
      response_types: [],
      redirect_uris: [],
      token_endpoint_auth_method: "client_secret_basic",
      scope: resourceScope || undefined,
    },
  ],
  // The resource scopes are also listed here so that a client may name them in its
  // registration metadata (`scope`), as the MCP SDKs do; `offline_access` is left out.
  scopes: ["openid", ...scopes],
  claims: { openid: ["sub"] },
  jwks: { keys: [{ ...jwk, kid, use: "sig", alg: args.alg }] },
  enabledJWA: { idTokenSigningAlgValues: [args.alg] },
  clientDefaults: {
    grant_types: ["authorization_code"],
    id_token_signed_response_alg: args.alg,
    response_types: ["code"],
    token_endpoint_auth_method: "client_secret_basic",
  },
  cookies: { keys: [crypto.randomBytes(32).toString("base64url")] },
  responseTypes: ["code"],
  pkce: { required: () => true },
  ttl: { AccessToken: ttl, ClientCredentials: ttl, AuthorizationCode: 60, Interaction: 600, Session: 3600, Grant: 3600 },
  // devInteractions: whatever login name is typed is the account (`sub`).
  findAccount: async (_ctx, sub) => ({ accountId: sub, claims: async () => ({ sub }) }),
  issueRefreshToken: async () => false,
  features: {
    devInteractions: { enabled: true },
    clientCredentials: { enabled: true },
    registration: { enabled: true },
    introspection: { enabled: false },
    revocation: { enabled: false },
    resourceIndicators: {
      enabled: true,
      defaultResource: async (_ctx, _client, oneOf) => oneOf ?? resource,
      useGrantedResource: async () => true,
      getResourceServerInfo: async (_ctx, indicator) => ({
        scope: resourceScope,
        audience: indicator,
        accessTokenTTL: ttl,
        accessTokenFormat: "jwt",
        jwt: { sign: { alg: args.alg, kid } },
      }),
    },
  },
});

// Say why a request failed, on stderr (the harness's log), never a token.
provider.on("server_error", (_ctx, err) => process.stderr.write(`idp: server_error ${err.stack ?? err}\n`));
for (const ev of ["authorization.error", "grant.error", "registration_create.error", "introspection.error"]) {
  provider.on(ev, (_ctx, err) => process.stderr.write(`idp: ${ev} ${err.name}: ${err.message} ${err.error_description ?? ""}\n`));
}

const server = http.createServer(provider.callback());
server.on("error", (e) => fail(`listen on 127.0.0.1:${port}: ${e.message}`));
server.listen(port, "127.0.0.1", () => {
  process.stdout.write(`ready ${issuer}\n`);
});

function stop(signal) {
  process.stderr.write(`idp: ${signal}, exiting\n`);
  server.close(() => process.exit(0));
  server.closeAllConnections();
  setTimeout(() => process.exit(0), 2000).unref();
}
process.on("SIGTERM", () => stop("SIGTERM"));
process.on("SIGINT", () => stop("SIGINT"));
