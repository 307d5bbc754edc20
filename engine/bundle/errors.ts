/**
 * Why a bundle was refused. The kind is a metric label, so it stays a small,
 * fixed set; the message says what exactly was wrong.
 */
export type BundleRejection =
  | 'unreadable' // the source could not be read or fetched
  | 'corrupt' // not a valid archive, manifest or data document
  | 'unsigned' // a signature is required and there is none
  | 'bad_signature' // the signature does not verify against a configured key
  | 'tampered' // a file's hash differs from the signed one, or files were added or removed
  | 'invalid_policy'; // the WASM module does not load or lacks a required entrypoint

export class BundleError extends Error {
  constructor(
    readonly kind: BundleRejection,
    message: string,
  ) {
    super(message);
    this.name = 'BundleError';
  }
}
