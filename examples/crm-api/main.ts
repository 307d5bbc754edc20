/**
 * Runs the example CRM API: `CRM_API_TOKEN=… node --import tsx examples/crm-api/main.ts [port]`
 * (port 18080 by default, the crm-api target's upstream in examples/gatehouse.yaml).
 */
import { startCrmApi } from './server.js';

const token = process.env.CRM_API_TOKEN;
if (!token) {
  process.stderr.write('crm-api: set CRM_API_TOKEN (the credential Gatehouse injects for the crm-api target)\n');
  process.exit(2);
}
const port = Number(process.argv[2] ?? process.env.CRM_API_PORT ?? 18080);
const api = await startCrmApi({ token, port });
process.stdout.write(`crm-api listening on ${api.url}\n`);
const stop = (): void => void api.close().then(() => process.exit(0));
process.once('SIGINT', stop);
process.once('SIGTERM', stop);
