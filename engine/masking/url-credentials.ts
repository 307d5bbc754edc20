/**
 * A request path with the values of query parameters that usually carry
 * credentials replaced, and any JWT in the path itself (`/verify/<jwt>`).
 * Evidence (audit events, recordings) must not hold a token because a
 * client put it in the URL.
 */
import { namedLikeCredential } from './credential-headers.js';
import { findSpans } from './detectors.js';
import { REDACTED } from './strategies.js';

const CREDENTIAL_PARAMS = /^(?:access_token|id_token|refresh_token|token|jwt|bearer|assertion|auth|api[_-]?key|key|secret|client_secret|password|passwd|pwd|sig|signature|code|x-amz-(?:signature|credential|security-token)|x-goog-(?:signature|credential))$/i;

/** The path with JWTs and credential-like query values redacted; everything else byte for byte, and no fragment. */
export function withoutUrlCredentials(url: string): string {
  const q = url.indexOf('?');
  if (q === -1) return withoutJwts(url);
  const hash = url.indexOf('#', q);
  const query = url.slice(q + 1, hash === -1 ? undefined : hash);
  // Some servers split on ";" as well as "&" (a=1;token=…).
  const redacted = query.split(/([&;])/).map((pair, i) => {
    const eq = pair.indexOf('=');
    if (i % 2 === 1 || eq === -1) return pair;
    const name = paramName(pair.slice(0, eq));
    const credential = CREDENTIAL_PARAMS.test(name) || namedLikeCredential(name) || isJwt(paramName(pair.slice(eq + 1)));
    return credential ? `${pair.slice(0, eq)}=${REDACTED}` : pair;
  }).join('');
  return `${withoutJwts(url.slice(0, q))}?${redacted}`; // a fragment never reaches a server; drop what a client sent anyway
}

/**
 * A URL's authority (`:authority`, Host) without credentials: any userinfo
 * (`user:password@`, `<token>@`) dropped, and any JWT in the host and port
 * that are left redacted. Evidence names the server, never who logged in to it.
 */
export function authorityWithoutCredentials(authority: string): string {
  return withoutJwts(authority.slice(authority.lastIndexOf('@') + 1));
}

/**
 * A base64url JSON object's start, as the jwt detector reads one: `{"`
 * ("eyJ"), or `{` and whitespace ("eyA", "ewo", "ewk", "ew0").
 */
const JWT_START = /e(?:yJ|yA|w[ok0])/;

/**
 * The text with any JWT in it replaced, everything else byte for byte. The
 * path's redaction, and the one for reasons: a policy's reason quotes what
 * the caller sent (the path, an override header), and reasons go into the
 * audit event, approval records and the answer (Authorizer.evaluate). A JWT
 * cut short by a reason's clip ("eyJ….eyJzdWIi...") is still one to the
 * detector once its payload has begun.
 */
export function withoutJwts(text: string): string {
  if (!JWT_START.test(text)) return text;
  let out = '';
  let at = 0;
  for (const span of findSpans(text, ['jwt'])) {
    out += `${text.slice(at, span.start)}${REDACTED}`;
    at = span.end;
  }
  return out + text.slice(at);
}

function paramName(raw: string): string {
  try {
    return decodeURIComponent(raw.replace(/\+/g, ' '));
  } catch {
    return raw;
  }
}

/** A JWT under any parameter name, as the jwt detector validates one (a JSON header with "alg"). */
function isJwt(value: string): boolean {
  if (!JWT_START.test(value.slice(0, 3))) return false;
  const [span] = findSpans(value, ['jwt']);
  return span !== undefined && span.start === 0 && span.end === value.length;
}
