import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FastifyInstance } from 'fastify';
import { createApiServer, parseAddress } from '../../api/server.js';
import { parseConfig } from '../../engine/config/load.js';
import { Engine } from '../../engine/engine.js';
import { makeBundle } from '../helpers/gateway-bundle.js';
import { makeTempDir, removeDir } from '../helpers/opa.js';

let dir: string;
let engine: Engine;
let app: FastifyInstance;

function engineFor(source: string): Engine {
  const config = parseConfig(`policy:\n  bundle:\n    source: ${source}\n`, join(dir, 'gatehouse.yaml'), {});
  return new Engine(config.policy, pino({ level: 'silent' }));
}

beforeAll(async () => {
  dir = makeTempDir('gatehouse-api-');
  makeBundle({ out: join(dir, 'bundle.tar.gz'), revision: 'api-test' });
  engine = engineFor('bundle.tar.gz');
  await engine.start();
  app = createApiServer({ engine, logger: pino({ level: 'silent' }) });
});
afterAll(async () => {
  await app.close();
  await engine.stop();
  removeDir(dir);
});

describe('HTTP API', () => {
  it('reports health with the active revision', async () => {
    const res = await app.inject({ method: 'GET', url: '/health' });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toMatchObject({ status: 'ok', policy: { revision: 'api-test', signature: 'unsigned' } });
  });

  it('is unhealthy while no bundle is active, and denies', async () => {
    const empty = engineFor('missing.tar.gz');
    await empty.start();
    const emptyApp = createApiServer({ engine: empty, logger: pino({ level: 'silent' }) });
    const health = await emptyApp.inject({ method: 'GET', url: '/health' });
    expect(health.statusCode).toBe(503);
    expect(health.json()).toMatchObject({ status: 'no_policy', policy: { revision: null } });
    const res = await emptyApp.inject({ method: 'POST', url: '/v1/eval/gatehouse/http/decision', payload: { input: {} } });
    expect(res.json().decision).toEqual({ action: 'deny', reasons: ['no policy bundle is loaded'], mask: [] });
    await emptyApp.close();
    await empty.stop();
  });

  it('evaluates POST /v1/eval/<entrypoint> and stamps the clock', async () => {
    const res = await app.inject({
      method: 'POST',
      url: '/v1/eval/gatehouse/ssh/decision',
      payload: { input: { identity: { sub: 'a', groups: ['nobody'] }, target: { name: 'web-prod', kind: 'ssh', labels: {} } } },
    });
    expect(res.statusCode).toBe(200);
    const body = res.json();
    expect(body.decision.action).toBe('deny');
    expect(body.metadata).toMatchObject({ entrypoint: 'gatehouse/ssh/decision', bundle_revision: 'api-test' });
  });

  it('rejects a body that is not {"input": {...}}', async () => {
    for (const payload of [{}, { input: [] }, { input: {}, extra: 1 }]) {
      const res = await app.inject({ method: 'POST', url: '/v1/eval/gatehouse/ssh/decision', payload });
      expect(res.statusCode).toBe(400);
      expect(res.json()).toEqual({ error: 'the body must be a JSON object {"input": {...}}' });
    }
  });

  it('serves Prometheus metrics', async () => {
    const res = await app.inject({ method: 'GET', url: '/metrics' });
    expect(res.headers['content-type']).toMatch(/^text\/plain/);
    expect(res.body).toMatch(/gatehouse_bundle_info\{revision="api-test"\} 1/);
    expect(res.body).toMatch(/gatehouse_policy_decisions_total\{entrypoint="gatehouse\/ssh\/decision",action="deny"\}/);
  });
});

it('parses listen addresses', () => {
  expect(parseAddress('127.0.0.1:8181')).toEqual({ host: '127.0.0.1', port: 8181 });
  expect(parseAddress('[::1]:9191')).toEqual({ host: '::1', port: 9191 });
});
