import type { DecisionAction, Entries, EntryInputs, RecordingProtocol } from './types.js';

/**
 * A protocol's recording format: how a proxy's input becomes a stored entry,
 * and how an entry reads back as text. One per protocol (formats.ts).
 */
export interface RecordingFormat<P extends RecordingProtocol> {
  readonly protocol: P;
  /** Stored with each session, so a recording is always read with the format it was written in. */
  readonly id: string;
  /** What one entry is, for people: "statements", later "commands" or "exchanges". */
  readonly unit: string;
  /** Checks the input and copies exactly the format's fields; or says what is wrong. */
  entry(input: EntryInputs[P], seq: number, now: number): Entries[P] | { invalid: string };
  /** The decision the entry records, for the deny counts; null when the format has none. */
  decision(entry: Entries[P]): DecisionAction | null;
  time(entry: Entries[P]): number;
  /** One entry as text for `gatehouse sessions replay`, timed from the session's start. */
  render(entry: Entries[P], startedAt: number): string;
}
