import { Command } from 'commander';
import { requestApi, withApiOptions, type ApiOptions } from '../api-client.js';
import { isoToTheSecond, printJson, printTable, UsageError } from '../io.js';

/** A place as GET /v1/masking/places shows it (api/routes/masking.ts). */
interface PlaceView {
  scope: string;
  rule_column: string;
  table_oid: number;
  attnum: number;
  noted_at: string;
}

interface ForgetAnswer {
  forgotten: PlaceView[];
  audit: { stream: string; seq: number };
}

export function maskingCommand(): Command {
  const masking = new Command('masking')
    .description('The places where the Postgres proxy found masked columns, masked for good until forgotten. For masking.admin_groups; authenticates with your OIDC token.');

  withApiOptions(masking.command('places').description('Every place, by database (scope): a masked rule column found at a table OID and attribute number.'))
    .action(async (options: ApiOptions) => {
      const body = (await requestApi(options, 'GET', '/v1/masking/places')) as { places: PlaceView[] };
      if (options.json) return printJson(body);
      if (body.places.length === 0) return void process.stdout.write('no masked column places noted\n');
      printTable(
        ['SCOPE', 'RULE COLUMN', 'TABLE OID', 'ATTNUM', 'NOTED AT'],
        body.places.map((p) => [p.scope, p.rule_column, String(p.table_oid), String(p.attnum), isoToTheSecond(p.noted_at)]),
      );
    });

  withApiOptions(masking.command('forget').description('Stop masking a place (every rule column noted there) that no longer holds a masked column; audited with your reason.'))
    .requiredOption('--scope <scope>', 'the database, as `masking places` shows it')
    .requiredOption('--table-oid <n>', 'the table\'s OID')
    .requiredOption('--attnum <n>', 'the column\'s attribute number')
    .requiredOption('--reason <text>', 'why the place no longer holds a masked column, for the audit trail')
    .action(async (options: ApiOptions & { scope: string; tableOid: string; attnum: string; reason: string }) => {
      const body = { scope: options.scope, table_oid: wholeNumber(options.tableOid, '--table-oid'), attnum: wholeNumber(options.attnum, '--attnum'), reason: options.reason };
      const answer = (await requestApi(options, 'POST', '/v1/masking/places/forget', body)) as ForgetAnswer;
      if (options.json) return printJson(answer);
      const columns = answer.forgotten.map((p) => p.rule_column).join(', ');
      process.stdout.write(`forgot masked column place ${options.scope}/${body.table_oid}/${body.attnum} (${columns}), audited at ${answer.audit.stream}#${answer.audit.seq}\n`);
    });

  return masking;
}

/** The gateway checks the range; this catches a typo before anything is sent. */
function wholeNumber(value: string, option: string): number {
  const n = Number(value);
  if (!/^-?\d+$/.test(value.trim()) || !Number.isSafeInteger(n)) throw new UsageError(`${option} ${value}: expected a whole number`);
  return n;
}
