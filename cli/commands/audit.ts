import { Command, Option } from 'commander';
import type { KeyObject } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { once } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import { keyIdOf, generateCheckpointKey, publicKeyFromPem, type CheckpointAlgorithm } from '../../engine/audit/key-source.js';
import { AnchorError, verifyAudit, type StreamSummary } from '../../engine/audit/verify.js';
import { visibleText } from '../../engine/observability/visible-text.js';
import { readConfig } from '../config.js';
import type { GatehouseConfig } from '../../engine/config/schema.js';
import { withStore } from '../with-store.js';
import type { AuditQuery, AuditRecord, Store } from '../../engine/store/store.js';
import { UsageError } from '../io.js';
import { parseTimeArg } from '../time-arg.js';

const CONFIG_OPTION = ['-c, --config <file>', 'gatehouse.yaml naming the store', 'gatehouse.yaml'] as const;
const TAIL_POLL_MS = 500;

export function auditCommand(): Command {
  const audit = new Command('audit').description('Verify, export and follow the tamper-evident audit trail.');

  audit
    .command('verify')
    .description('Check every stream\'s hash chain and signed checkpoints; exit 1 at the first problem.')
    .option(...CONFIG_OPTION)
    .option('--anchor <file|jws>', 'a checkpoint kept apart from the store (audit.checkpoint.export_file, or the JWS itself): catches a truncated tail')
    .option('--public-key <pem>', 'checkpoint public key (default: derived from audit.checkpoint.key_file)')
    .option('--allow-unsigned', 'with a public key, accept streams without checkpoints (written before checkpoints were configured); warns instead')
    .action(async (options: { config: string; anchor?: string; publicKey?: string; allowUnsigned?: boolean }) => {
      const config = readConfig(options.config);
      const publicKey = verificationKey(config, options.publicKey);
      const anchor = options.anchor ? readAnchor(options.anchor) : null;
      if (anchor && !publicKey) throw new UsageError('--anchor needs a public key: give --public-key or configure audit.checkpoint.key_file');
      await withStore(config, async (store) => {
        const progress = progressLine('verified');
        let report;
        try {
          // A gateway signs at least once per interval while it writes; twice that, and a minute, is the most a checkpoint may lag.
          const maxGapMs = (2 * (config.audit.checkpoint?.interval_seconds ?? 60) + 60) * 1000;
          const requireCheckpoints = publicKey && !options.allowUnsigned ? { maxGapMs } : null;
          report = await verifyAudit({ store, publicKey, anchor, requireCheckpoints, onProgress: progress.update });
        } catch (err) {
          if (!(err instanceof AnchorError)) throw err;
          progress.done();
          console.error(`gatehouse: audit verification failed: ${err.message}`);
          process.exitCode = 1;
          return;
        } finally {
          progress.done();
        }
        if (report.failure) {
          const { stream, seq, reason } = report.failure;
          // Stream names are the store's: whoever edits it could name one to rewrite the terminal's last lines.
          console.error(visibleText(`gatehouse: audit verification failed: stream "${stream}", seq ${seq}: ${reason}`));
          process.exitCode = 1;
          return;
        }
        for (const s of report.streams) console.log(visibleText(describeStream(s, publicKey !== null)));
        if (report.streams.length === 0) console.log('no audit records yet');
        if (report.signaturesUnchecked) {
          console.error('gatehouse: warning: checkpoint signatures were not checked (no public key: give --public-key or configure audit.checkpoint.key_file)');
        }
        if (publicKey && options.allowUnsigned && report.streams.some((s) => s.records > 0 && s.checkpoints === 0)) {
          console.error('gatehouse: warning: --allow-unsigned: streams without checkpoints were accepted; a rewritten or made-up stream would pass as they did');
        }
        if (!anchor) {
          console.error(publicKey && !options.allowUnsigned
            ? 'gatehouse: note: without --anchor, records written since the newest checkpoint (one interval) could be rewritten undetected, and a whole stream removed with its checkpoints'
            : 'gatehouse: note: without --anchor and a public key, a chain rewritten whole, with its checkpoints removed, cannot be detected');
        }
        console.log(`audit trail verified: ${report.streams.length} stream(s), ${report.streams.reduce((n, s) => n + s.records, 0)} record(s)`);
      });
    });

  audit
    .command('export')
    .description('Write audit records to standard output, one per line.')
    .option(...CONFIG_OPTION)
    .addOption(new Option('--format <format>', 'ocsf: one OCSF event per line; jsonl: full chain records').choices(['ocsf', 'jsonl']).default('ocsf'))
    .option('--since <time>', 'only events at or after this time: ISO time, or a duration back from now (15m, 2h, 7d)')
    .option('--until <time>', 'only events at or before this time')
    .option('--stream <name>', 'only this stream')
    .action(async (options: { config: string; format: 'ocsf' | 'jsonl'; since?: string; until?: string; stream?: string }) => {
      const config = readConfig(options.config);
      const query: AuditQuery = {};
      if (options.stream) query.stream = options.stream;
      if (options.since) query.since = parseTimeArg(options.since, '--since');
      if (options.until) query.until = parseTimeArg(options.until, '--until');
      if (query.since !== undefined && query.until !== undefined && query.since > query.until) throw new UsageError('--since is after --until');
      const format = options.format === 'ocsf' ? (r: AuditRecord) => r.event : (r: AuditRecord) => JSON.stringify(r);
      await withStore(config, async (store) => {
        const progress = progressLine('exported');
        const out = new LineWriter();
        let n = 0;
        try {
          for await (const r of store.readAudit(query)) {
            if (!(await out.write(format(r)))) break;
            if (++n % 10_000 === 0) progress.update(n);
          }
          await out.flush();
        } finally {
          progress.done();
        }
      });
    });

  audit
    .command('tail')
    .description('Print the newest events, then follow new ones until interrupted (Ctrl-C).')
    .option(...CONFIG_OPTION)
    .option('--stream <name>', 'only this stream (default: every stream)')
    .option('-n, --lines <n>', 'how many of the newest events to print first, per stream', '10')
    .action(async (options: { config: string; stream?: string; lines: string }) => {
      const config = readConfig(options.config);
      const lines = Number(options.lines);
      if (!Number.isSafeInteger(lines) || lines < 0) throw new UsageError(`-n ${options.lines}: expected a whole number of events`);
      const stop = new AbortController();
      process.once('SIGINT', () => stop.abort());
      process.once('SIGTERM', () => stop.abort());
      await withStore(config, (store) => follow(store, options.stream, lines, stop.signal));
    });

  audit
    .command('keygen')
    .description('Create a checkpoint signing key (PKCS#8 PEM, mode 0600) and print its public key.')
    .requiredOption('--out <file>', 'where to write the private key (audit.checkpoint.key_file)')
    .addOption(new Option('--alg <alg>', 'signature algorithm').choices(['ES256', 'EdDSA']).default('ES256'))
    .action(async (options: { out: string; alg: CheckpointAlgorithm }) => {
      const { privatePem, publicPem } = generateCheckpointKey(options.alg);
      try {
        // wx: never overwrite a key; losing it would orphan every checkpoint it signed.
        writeFileSync(options.out, privatePem, { mode: 0o600, flag: 'wx' });
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        throw new UsageError(code === 'EEXIST'
          ? `${options.out} already exists; not overwriting a key (remove it first if it is really unused)`
          : `cannot write ${options.out} (${code ?? 'error'})`);
      }
      process.stdout.write(publicPem);
      console.error(`gatehouse: wrote the ${options.alg} private key to ${options.out} (key id ${await keyIdOf(publicKeyFromPem(publicPem, 'the new key'))}); keep it off the store's volume`);
    });

  return audit;
}


function verificationKey(config: GatehouseConfig, publicKeyFile: string | undefined): KeyObject | null {
  const file = publicKeyFile ?? config.audit.checkpoint?.key_file;
  if (!file) return null;
  let pem: string;
  try {
    pem = readFileSync(file, 'utf8');
  } catch (err) {
    const which = publicKeyFile ? '--public-key' : 'audit.checkpoint.key_file';
    throw new UsageError(`cannot read ${which} ${file} (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
  }
  try {
    return publicKeyFromPem(pem, file);
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
}

/** --anchor is a file (the export_file's JSON, or a bare JWS) or the compact JWS itself. */
function readAnchor(value: string): string {
  const looksLikeJws = /^[\w-]+\.[\w-]+\.[\w-]+$/.test(value);
  let text = value;
  if (!looksLikeJws || existsSync(value)) {
    try {
      text = readFileSync(value, 'utf8').trim();
    } catch (err) {
      throw new UsageError(`cannot read --anchor ${value} (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
    }
  }
  if (text.startsWith('{')) {
    try {
      const jws = (JSON.parse(text) as { jws?: unknown }).jws;
      if (typeof jws === 'string') return jws;
    } catch {
      // fall through to the error below
    }
    throw new UsageError(`--anchor ${value}: expected a checkpoint ({"jws": …}) or a compact JWS`);
  }
  return text;
}

function describeStream(s: StreamSummary, signed: boolean): string {
  const checkpoints = s.checkpoints === 0
    ? 'no checkpoints'
    : `${s.checkpoints} checkpoint(s)${signed ? ' with valid signatures' : ' (signatures not checked)'}, newest ${new Date(s.lastCheckpoint!).toISOString()}`;
  return `stream ${s.stream}: ${s.records} record(s), head seq ${s.seq} ${s.hash.slice(0, 16)}…; ${checkpoints}${s.anchored ? '; anchor matches' : ''}`;
}

async function follow(store: Store, only: string | undefined, lines: number, signal: AbortSignal): Promise<void> {
  const out = new LineWriter();
  const after = new Map<string, number>();
  const start = async (stream: string): Promise<void> => {
    const head = await store.auditHead(stream);
    after.set(stream, Math.max(0, (head?.seq ?? 0) - lines));
  };
  if (only) await start(only);
  while (!signal.aborted) {
    if (!only) for (const s of await store.auditStreams()) if (!after.has(s)) await start(s);
    for (const [stream, seq] of after) {
      let last = seq;
      for await (const r of store.readAudit({ stream, afterSeq: seq })) {
        if (!(await out.write(r.event))) return;
        last = r.seq;
      }
      after.set(stream, last);
    }
    await out.flush();
    await sleep(TAIL_POLL_MS, undefined, { signal }).catch(() => undefined);
  }
  await out.flush();
}

/**
 * Lines to stdout with backpressure: waits for 'drain' when the pipe is full,
 * and reports false once the reader has gone away (`| head`), instead of
 * dying on EPIPE.
 */
class LineWriter {
  private closed = false;
  private buffer = '';

  constructor(private readonly stream: NodeJS.WriteStream = process.stdout) {
    stream.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code !== 'EPIPE') throw err;
      this.closed = true;
    });
  }

  /** Buffers small lines into larger writes: one syscall per line would dominate a large export. */
  async write(line: string): Promise<boolean> {
    if (this.closed) return false;
    this.buffer += `${line}\n`;
    if (this.buffer.length >= 64 * 1024) await this.push();
    return !this.closed;
  }

  async flush(): Promise<void> {
    await this.push();
  }

  private async push(): Promise<void> {
    if (this.buffer === '' || this.closed) return;
    const chunk = this.buffer;
    this.buffer = '';
    if (!this.stream.write(chunk)) await Promise.race([once(this.stream, 'drain'), once(this.stream, 'close')]);
  }
}

/** A progress counter on stderr, only for a person watching a terminal. */
function progressLine(verb: string): { update: (n: number) => void; done: () => void } {
  if (!process.stderr.isTTY) return { update: () => undefined, done: () => undefined };
  let shown = false;
  return {
    update: (n) => {
      shown = true;
      process.stderr.write(`\r${verb} ${n.toLocaleString('en')} records`);
    },
    done: () => {
      if (shown) process.stderr.write('\n');
      shown = false;
    },
  };
}
