/**
 * JSON numbers with more digits than a double holds. JSON.parse reads
 * 4000123456789010017 (a 19-digit card) as 4000123456789010000, so a
 * detector would see other digits than the client gets, and a masked
 * document written back would change every long id in it (64-bit ids are
 * common). A document that has such numbers is read with each of them as
 * a tagged string of its exact text: masking scans those digits
 * (json-fields.ts), and the writer puts back whatever was not masked as
 * the number it was, byte for byte.
 */
import { randomBytes } from 'node:crypto';
import { JsonTooDeep, MAX_JSON_DEPTH, nestsDeeperThan } from './json-text.js';

/**
 * Starts a tagged number. JSON text spells a NUL only as an escape, and the
 * process's random part is not in any document: no string the document
 * holds, nor a member name, is read as a tag.
 */
const TAG = `\u0000json-number-${randomBytes(8).toString('hex')}:`;
const TAG_IN_JSON = JSON.stringify(TAG).slice(1, -1);
/**
 * Where a number may not survive JSON.parse: 16 digits, perhaps with a
 * point among them (a double holds 15 exactly), or an exponent (1e400 is
 * Infinity, written back as null).
 */
const LONG_DIGITS = /\d(?:\.?\d){15}|\d[eE][+-]?\d{3}/;
/** Strings are matched whole so that digits inside them are left alone; numbers as JSON writes them. */
const TOKENS = /"(?:[^"\\]|\\.)*"|-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/g;
const TAGGED_IN_JSON = new RegExp(`"${TAG_IN_JSON.replaceAll('\\', '\\\\')}(-?(?:0|[1-9]\\d*)(?:\\.\\d+)?(?:[eE][+-]?\\d+)?)"`, 'g');

/**
 * Parses JSON text as JSON.parse does (and throws as it does), except that
 * numbers of more than 15 significant digits, and those past a double's
 * range, come back as tagged strings, and that text nested deeper than
 * MAX_JSON_DEPTH throws JsonTooDeep.
 */
export function parseJsonExactly(text: string): unknown {
  const parsed: unknown = JSON.parse(text);
  if (nestsDeeperThan(text, MAX_JSON_DEPTH)) throw new JsonTooDeep();
  if (!LONG_DIGITS.test(text)) return parsed;
  let tagged = false;
  const wrapped = text.replace(TOKENS, (token) => {
    if (token.startsWith('"') || (significantDigits(token) <= 15 && Number.isFinite(Number(token)))) return token;
    tagged = true;
    return `"${TAG_IN_JSON}${token}"`;
  });
  return tagged ? JSON.parse(wrapped) : parsed;
}

/** The exact text of a tagged number, or null for any other value. */
export function taggedNumber(value: unknown): string | null {
  return typeof value === 'string' && value.startsWith(TAG) ? value.slice(TAG.length) : null;
}

/** JSON.stringify, with tagged numbers written back as the numbers they were. */
export function stringifyJson(value: unknown): string {
  const text = JSON.stringify(value);
  return text.includes(TAG_IN_JSON) ? text.replace(TAGGED_IN_JSON, '$1') : text;
}

function significantDigits(number: string): number {
  const mantissa = number.replace(/^-/, '').replace(/[eE].*$/, '').replace('.', '');
  return mantissa.replace(/^0+/, '').length;
}
