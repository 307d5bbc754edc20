import type { RecordingFormat } from './format.js';
import { httpExchange } from './http-exchange.js';
import { postgresTranscript } from './postgres-transcript.js';
import type { RecordingProtocol } from './types.js';

/** The format each protocol records in. */
export const FORMATS: { [P in RecordingProtocol]: RecordingFormat<P> } = {
  postgres: postgresTranscript,
  http: httpExchange,
};

/** The format a stored session was written in, by its id; undefined for one this build does not know. */
export function formatById(id: string): RecordingFormat<RecordingProtocol> | undefined {
  return Object.values(FORMATS).find((f) => f.id === id);
}
