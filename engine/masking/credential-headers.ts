/**
 * HTTP headers that carry a credential or session state: an approval
 * record stores them only as a digest (action-input.ts), and a recording
 * never holds them, in either direction.
 */
const CREDENTIAL_HEADER = /^(?:authorization|proxy-authorization|cookie|set-cookie|x-api-key|api-key|apikey|x-auth-token|x-access-token|x-amz-security-token|x-vault-token|private-token|x-csrf-token|x-xsrf-token|x-subject-token|x-goog-iap-jwt-assertion)$/i;

/**
 * Names made of the words credentials go under, whatever the vendor puts
 * around them: X-Goog-Api-Key, Ocp-Apim-Subscription-Key, X-Session-Token,
 * X-Shopify-Access-Token, X-Auth for headers; auth_token, token[],
 * session_id for query parameters. A word is a whole part between "-", "_",
 * ".", "[" or "]": X-Authenticated-User and tokenizer are not one.
 */
const CREDENTIAL_WORDS = /(?:^|[-_.[\]])(?:token|secret|password|passwd|pwd|auth|session|sessionid|sid|credentials?|signature|sig|jwt|bearer|assertion|apikey|api[-_]key|access[-_]key|subscription[-_]key|private[-_]key|secret[-_]key)(?:[-_.[\]]|$)/i;

/** A header or parameter name with a credential's word in it (CREDENTIAL_WORDS). */
export function namedLikeCredential(name: string): boolean {
  return CREDENTIAL_WORDS.test(name);
}

/**
 * A value that is a credential whatever the header's name: an HTTP
 * authentication scheme and its parameters (`Authentication: Bearer …`,
 * `X-Upstream: Basic …`), or a JWT anywhere in it.
 */
const CREDENTIAL_VALUE = /^\s*(?:bearer|basic|digest|token|negotiate|ntlm|apikey|api-key|aws4-hmac-sha256|hmac|oauth|bot|sso-key)\s+\S|\beyJ[\w-]{8,}\.[\w-]{8,}\./i;

/** A lower- or mixed-case header name, and its value when known: either can make it a credential. */
export function isCredentialHeader(name: string, value?: unknown): boolean {
  return CREDENTIAL_HEADER.test(name) || CREDENTIAL_WORDS.test(name) || (typeof value === 'string' && CREDENTIAL_VALUE.test(value));
}

/** Headers whose value is a URL, which can carry a credential in its query (a Referer from a page opened with ?access_token=). */
export const URL_HEADERS: ReadonlySet<string> = new Set(['referer', 'location', 'content-location']);
