/**
 * String.prototype.normalize on text whose runs of combining marks are
 * cut every 30 by a combining grapheme joiner (U+034F), as Unicode's
 * Stream-Safe Text Format does (UAX #15). Normalizing puts each run of
 * marks in canonical order, and V8 does it in time quadratic in the run's
 * length: a response of a few hundred KiB of alternating marks held the
 * main thread, and every other request, for seconds. No real text has such
 * runs, and the result differs from normalize() only inside them.
 */
export function normalizeStreamSafe(text: string, form: 'NFC' | 'NFD' | 'NFKC' | 'NFKD'): string {
  return text.replace(LONG_MARK_RUN, '$&\u034F').normalize(form);
}

const LONG_MARK_RUN = /\p{M}{30}(?=\p{M})/gu;
