/**
 * Settings the gateway's reading of SQL depends on.
 *
 * libpg-query lexes text as PostgreSQL does with its defaults. With
 * standard_conforming_strings off, a backslash in '…' escapes the next
 * character; with a client_encoding other than UTF-8, a multibyte character
 * can swallow the backslash of an E'…' escape. Either way the server would
 * split the text into other statements than the ones decided. The login
 * accepts only UTF-8 (client-session.ts); these keep a session there.
 *
 * The masking checks also read an unqualified name as public.name (and
 * sessions start with search_path = public, client-session.ts): a caller
 * with column masks may not change search_path or the role ("$user" in
 * it), nor call set_config, which can change any of these without a SET
 * the analyser reads. Defaults of later sessions (ALTER ROLE / DATABASE …
 * SET) of these settings are refused to everyone; a session that starts
 * under an unreadable default is refused at login (client-session.ts).
 */
import type { StatementFacts } from './facts.js';

/** Values each setting may take: the ones under which the gateway reads SQL as the server does. */
const SAFE_VALUES: Readonly<Record<string, ReadonlySet<string>>> = {
  standard_conforming_strings: new Set(['on', 'true', 'yes', '1']),
  client_encoding: new Set(['utf8', 'utf-8', 'utf_8', 'unicode']),
};

/** Settings that decide where an unqualified name resolves ("$user" in search_path is the role). */
const NAME_RESOLVING = new Set(['search_path', 'role', 'session_authorization']);

/** Why the statements would change how the gateway must read SQL, or null. */
export function readingChange(statements: readonly StatementFacts[], columnsMasked: boolean): string | null {
  for (const statement of statements) {
    const setting = statement.setting;
    // ALTER ROLE / DATABASE … SET: the default of every later session, whoever's.
    const verb = statement.kind === 'set' ? 'SET' : statement.kind === 'alter' ? 'ALTER … SET' : null;
    if (verb && setting !== undefined && SAFE_VALUES[setting]) {
      if (statement.value === undefined || !SAFE_VALUES[setting].has(statement.value)) {
        return `${verb} ${setting} to anything but ${[...SAFE_VALUES[setting]][0]} would make the server read SQL differently from the gateway`;
      }
    }
    if (statement.kind === 'alter' && setting !== undefined && NAME_RESOLVING.has(setting)) {
      return `ALTER … SET ${setting} would change where unqualified names resolve in later sessions, where the masking checks do not look`;
    }
    if (!columnsMasked) continue;
    if ((statement.kind === 'set' || statement.kind === 'reset') && setting !== undefined && (NAME_RESOLVING.has(setting) || setting === 'all')) {
      return `${statement.kind.toUpperCase()} ${setting} would make unqualified names resolve where the masking checks do not look; qualify the schema instead`;
    }
    if (callsSetConfig(statement)) {
      return 'set_config can change search_path and how SQL is read, which the masking checks rely on; use SET';
    }
  }
  return null;
}

/**
 * Settings an approval need not show: their value is bound (DateStyle,
 * IntervalStyle and TimeZone, which the server reports), held to one value
 * (client_encoding, standard_conforming_strings: SAFE_VALUES), or they
 * change how fast or how loudly a statement runs, how results are written
 * out, or guard it, never what it does. Drivers set several at connect.
 */
const APPROVAL_NEUTRAL = new Set([
  'datestyle', 'intervalstyle', 'timezone', 'client_encoding', 'standard_conforming_strings',
  'application_name', 'client_min_messages', 'lc_messages', 'extra_float_digits', 'bytea_output',
  'statement_timeout', 'lock_timeout', 'idle_in_transaction_session_timeout', 'idle_session_timeout',
  'work_mem', 'maintenance_work_mem', 'temp_buffers', 'effective_cache_size', 'random_page_cost', 'seq_page_cost',
  'max_parallel_workers_per_gather', 'jit', 'geqo',
  'transaction', 'session characteristics', 'transaction_isolation', 'default_transaction_isolation',
  'transaction_read_only', 'default_transaction_read_only',
]);
const NEUTRAL_PREFIXES = ['enable_', 'cpu_', 'jit_', 'parallel_'];

/**
 * What a statement changes in the session that changes what later
 * statements do, and that an approval cannot show: search_path or the role
 * (where names resolve), transform_null_equals, array_nulls, … Null for
 * the settings in APPROVAL_NEUTRAL and for statements that set nothing.
 */
export function sessionChangeBeyondApproval(statement: StatementFacts): string | null {
  if (statement.kind === 'discard') return 'DISCARD';
  if (callsSetConfig(statement)) return 'set_config';
  if (statement.kind !== 'set' && statement.kind !== 'reset') return null;
  const setting = statement.setting ?? 'all';
  if (setting === 'all') return 'RESET ALL';
  return APPROVAL_NEUTRAL.has(setting) || NEUTRAL_PREFIXES.some((p) => setting.startsWith(p)) ? null : setting;
}

/** set_config changes any setting, as a function call the analyser only names. */
export function callsSetConfig(statement: StatementFacts): boolean {
  return statement.functions.some((f) => f.slice(f.lastIndexOf('.') + 1).toLowerCase() === 'set_config');
}

/**
 * A ParameterStatus the server reports that leaves the gateway unable to
 * read the session's SQL (a setting changed by a function the analyser
 * cannot see into): the session must end.
 */
export function unreadableSetting(name: string, value: string): string | null {
  const safe = SAFE_VALUES[name];
  return safe && !safe.has(value.toLowerCase()) ? `the server now has ${name} = ${value}, under which the gateway cannot read this session's SQL` : null;
}
