/** Why a body cannot be passed on: one line, for the caller and the log, never a value. */
export class BodyRefused extends Error {
  override name = 'BodyRefused';
}
