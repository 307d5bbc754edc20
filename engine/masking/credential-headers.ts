/**
 * HTTP headers that carry a credential or session state: an approval
 * record stores them only as a digest (action-input.ts), and a recording
 * never holds them, in either direction.
 */
const CREDENTIAL_HEADER = /^(?:authorization|proxy-authorization|cookie|set-cookie|x-api-key|api-key|apikey|x-auth-token|x-access-token|x-amz-security-token|x-vault-token|private-token|x-csrf-token|x-xsrf-token|x-subject-token|x-goog-iap-jwt-assertion)$/i;

/** A lower- or mixed-case header name. */
export function isCredentialHeader(name: string): boolean {
  return CREDENTIAL_HEADER.test(name);
}
