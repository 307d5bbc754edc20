import { Command } from 'commander';
import { withStore } from '../with-store.js';
import { formatById } from '../../engine/recording/formats.js';
import type { RecordingFormat } from '../../engine/recording/format.js';
import { HAR_CREATOR, harLogEntry, HTTP_EXCHANGE } from '../../engine/recording/http-exchange.js';
import type { Entries, HttpExchangeEntry, RecordingProtocol } from '../../engine/recording/types.js';
import { entryView, linkedEntries, sessionView, type LinkedEntry, type SessionView } from '../../engine/recording/views.js';
import type { SessionSummary, Store } from '../../engine/store/store.js';
import { readConfig } from '../config.js';
import { isoToTheSecond, printJson, printTable, UsageError } from '../io.js';
import { visibleText } from '../../engine/observability/visible-text.js';

const CONFIG_OPTION = ['-c, --config <file>', 'gatehouse.yaml naming the store', 'gatehouse.yaml'] as const;

export function sessionsCommand(): Command {
  const sessions = new Command('sessions').description('List and replay recorded sessions (read from the store, like `audit`).');

  sessions
    .command('list')
    .description('Recorded sessions, newest first.')
    .option(...CONFIG_OPTION)
    .option('--target <name>', 'only sessions to this target')
    .option('--who <sub>', 'only sessions of this caller (or of agents acting for it)')
    .option('-n, --limit <n>', 'at most this many sessions', '50')
    .option('--json', 'print JSON')
    .action(async (options: { config: string; target?: string; who?: string; limit: string; json?: boolean }) => {
      const limit = Number(options.limit);
      if (!Number.isSafeInteger(limit) || limit < 1 || limit > 10_000) throw new UsageError(`--limit ${options.limit}: expected a whole number from 1 to 10000`);
      const config = readConfig(options.config);
      await withStore(config, async (store) => {
        const found = (await store.listSessions({ target: options.target, who: options.who === undefined ? undefined : { sub: options.who }, limit })).map(sessionView);
        if (options.json) return printJson({ sessions: found });
        if (found.length === 0) return void process.stdout.write('no recorded sessions\n');
        printSessions(found);
      });
    });

  sessions
    .command('replay')
    .description('A session\'s transcript as text, each entry with the audit event of its decision; exit 1 if the session is unknown, an entry is not backed by its audit event, or entries were lost while recording.')
    .argument('<id>', 'the session id (as in `sessions list`, and in audit events as actor.session.uid)')
    .option(...CONFIG_OPTION)
    .option('--json', 'print JSON: the session, and each entry with its audit event')
    .option('--har', 'print an HTTP session as a HAR 1.2 log (for browser devtools and HAR viewers)')
    .action(async (id: string, options: { config: string; json?: boolean; har?: boolean }) => {
      if (options.json && options.har) throw new UsageError('give --json or --har, not both');
      const config = readConfig(options.config);
      await withStore(config, async (store) => {
        const session = await store.getSession(id);
        if (!session) {
          console.error(`gatehouse: no session recording with id ${id} (gatehouse sessions list shows the recent ones)`);
          process.exitCode = 1;
          return;
        }
        if (options.har && session.format !== HTTP_EXCHANGE) {
          throw new UsageError(`--har: session ${id} is a ${session.protocol} session (${session.format}); only HTTP sessions are recorded as HAR exchanges`);
        }
        const { broken, missing } = options.har ? await replayHar(store, session) : options.json ? await replayJson(store, session) : await replayText(store, session);
        if (broken > 0) {
          console.error(`gatehouse: ${broken} transcript entr${broken === 1 ? 'y is' : 'ies are'} not backed by the audit trail (see AUDIT LINK BROKEN above); run gatehouse audit verify`);
          process.exitCode = 1;
        }
        // An incomplete transcript is not a verified one, whichever the output (--har has no place to say so).
        const lost = Math.max(session.dropped_entries, missing);
        if (lost > 0) {
          console.error(`gatehouse: ${lost} entr${lost === 1 ? 'y was' : 'ies were'} lost while recording session ${id}; the transcript is incomplete`);
          process.exitCode = 1;
        }
      });
    });

  return sessions;
}


function who(s: SessionView): string {
  return s.identity.act ? `${s.identity.sub} for ${s.identity.act.sub}` : s.identity.sub;
}

function shortTime(iso: string | null): string {
  return iso === null ? 'open' : isoToTheSecond(iso);
}

function printSessions(sessions: SessionView[]): void {
  const rows = sessions.map((s) => [
    s.id,
    s.target,
    who(s),
    shortTime(s.started_at),
    shortTime(s.ended_at),
    `${s.entries}${s.dropped_entries ? ` (+${s.dropped_entries} lost)` : ''}`,
    String(s.denies),
  ]);
  printTable(['ID', 'TARGET', 'WHO', 'STARTED', 'ENDED', 'ENTRIES', 'DENIES'], rows);
}

function describeSession(s: SessionView): string {
  const lines = [
    `session ${s.id}`,
    `  target:   ${s.target} (${s.target_kind})`,
    `  who:      ${who(s)}${s.identity.groups.length ? ` (groups: ${s.identity.groups.join(', ')})` : ''}`,
    `  from:     ${s.source_ip ?? 'unknown'}`,
    `  started:  ${s.started_at}`,
    `  ended:    ${s.ended_at === null ? 'still open (or the gateway stopped without closing it)' : `${s.ended_at}${s.end_reason ? ` (${s.end_reason})` : ''}`}`,
    `  recorded: ${s.entries} ${s.entries === 1 ? s.unit.replace(/s$/, '') : s.unit}, ${s.denies} denied, by gateway ${s.gateway} (${s.format})`,
  ];
  if (s.dropped_entries > 0) lines.push(`  WARNING:  ${s.dropped_entries} entr${s.dropped_entries === 1 ? 'y was' : 'ies were'} lost while recording; the transcript is incomplete (gaps in seq)`);
  return `${lines.join('\n')}\n`;
}

/** What a replay found: entries not backed by their audit event, and entries missing (gaps in seq). */
interface Replayed {
  broken: number;
  missing: number;
}

/** Counts the entries missing before each seq (entries lost while recording leave gaps). */
class Gaps {
  missing = 0;
  #expected = 1;

  /** How many are missing right before this seq. */
  see(seq: number): number {
    const gap = Math.max(0, seq - this.#expected);
    this.missing += gap;
    this.#expected = seq + 1;
    return gap;
  }

  get none(): boolean {
    return this.#expected === 1;
  }
}

/** Prints the transcript; says how many entries are not backed by their audit event, and how many are missing. */
async function replayText(store: Store, session: SessionSummary): Promise<Replayed> {
  const view = sessionView(session);
  const format = formatById(session.format) as RecordingFormat<RecordingProtocol> | undefined;
  const out = new Output();
  // What agents sent is shown, never acted on by the terminal.
  out.write(visibleText(`${describeSession(view)}\n`));
  let broken = 0;
  const gaps = new Gaps();
  for await (const linked of linkedEntries(store, session.id)) {
    const { record } = linked;
    const gap = gaps.see(record.seq);
    if (gap > 0) out.write(`          … ${gap === 1 ? `entry ${record.seq - 1}` : `entries ${record.seq - gap}–${record.seq - 1}`} missing (lost while recording)\n`);
    const text = format
      ? format.render(linked.entry as unknown as Entries[RecordingProtocol], session.started_at)
      : `[+${((record.time - session.started_at) / 1000).toFixed(3)}s] ${record.entry}`;
    out.write(visibleText(`${text}\n          ${auditLine(linked)}\n`));
    if (linked.audit?.problem) broken += 1;
    await out.drained();
  }
  if (gaps.none) out.write('(no entries)\n');
  await out.end();
  return { broken, missing: gaps.missing };
}

function auditLine({ entry, audit }: LinkedEntry): string {
  const decision = `decision ${String(entry['decision_id'] ?? 'none')}`;
  if (!audit) return `${decision}, no audit location recorded (its event was lost on a target with audit.fail_open, or the front end did not pass it)`;
  const where = `audit ${audit.stream}#${audit.seq}`;
  if (audit.problem) return `${decision}, ${where}: AUDIT LINK BROKEN: ${audit.problem}`;
  const revision = (audit.event?.['policy'] as { version?: unknown } | undefined)?.version;
  return `${decision}, ${where}${revision ? ` (bundle ${String(revision)})` : ''}`;
}

/** Writes JSON as it goes, so a long session is never held in memory whole. */
async function replayJson(store: Store, session: SessionSummary): Promise<Replayed> {
  const out = new Output();
  out.write(`{"session": ${JSON.stringify(sessionView(session))},\n "entries": [`);
  let broken = 0;
  const gaps = new Gaps();
  let first = true;
  for await (const linked of linkedEntries(store, session.id)) {
    gaps.see(linked.record.seq);
    const audit = linked.audit ? { stream: linked.audit.stream, seq: linked.audit.seq, problem: linked.audit.problem, event: linked.audit.event } : null;
    out.write(`${first ? '\n' : ',\n'}${JSON.stringify({ ...entryView(linked.record, session.started_at), audit_event: audit })}`);
    first = false;
    if (linked.audit?.problem) broken += 1;
    await out.drained();
  }
  out.write('\n]}\n');
  await out.end();
  return { broken, missing: gaps.missing };
}

/** An HTTP session as a HAR 1.2 log, written as it goes; each entry keeps its decision and audit link under `_gatehouse`. */
async function replayHar(store: Store, session: SessionSummary): Promise<Replayed> {
  const out = new Output();
  out.write(`{"log": {"version": "1.2", "creator": ${JSON.stringify(HAR_CREATOR)},\n "entries": [`);
  let broken = 0;
  const gaps = new Gaps();
  let first = true;
  for await (const linked of linkedEntries(store, session.id)) {
    gaps.see(linked.record.seq);
    out.write(`${first ? '\n' : ',\n'}${JSON.stringify(harLogEntry(linked.entry as unknown as HttpExchangeEntry))}`);
    first = false;
    if (linked.audit?.problem) broken += 1;
    await out.drained();
  }
  out.write('\n]}}\n');
  await out.end();
  return { broken, missing: gaps.missing };
}

/** stdout with backpressure, and quiet when the reader goes away (`| head`). */
class Output {
  #closed = false;

  constructor(private readonly stream: NodeJS.WriteStream = process.stdout) {
    stream.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code !== 'EPIPE') throw err;
      this.#closed = true;
    });
  }

  write(text: string): void {
    if (!this.#closed) this.stream.write(text);
  }

  async drained(): Promise<void> {
    if (this.#closed || !this.stream.writableNeedDrain) return;
    await new Promise<void>((resolve) => {
      const done = () => {
        this.stream.off('drain', done);
        this.stream.off('close', done);
        resolve();
      };
      this.stream.once('drain', done);
      this.stream.once('close', done);
    });
  }

  async end(): Promise<void> {
    await this.drained();
  }
}
