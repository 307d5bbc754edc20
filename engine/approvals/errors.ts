/** Why an approval operation was refused; the API maps `code` to an HTTP status. */
export type ApprovalErrorCode = 'not_found' | 'forbidden' | 'conflict' | 'invalid' | 'too_many';

export class ApprovalError extends Error {
  constructor(
    readonly code: ApprovalErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'ApprovalError';
  }
}
