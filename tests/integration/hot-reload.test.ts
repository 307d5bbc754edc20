import { generateKeyPairSync } from 'node:crypto';
import { once } from 'node:events';
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { readBundleArchive } from '../../engine/bundle/archive.js';
import type { BundleVerification } from '../../engine/bundle/bundle.js';
import { FileBundleSource } from '../../engine/bundle/sources/file-source.js';
import { HttpBundleSource } from '../../engine/bundle/sources/http-source.js';
import type { BundleSource } from '../../engine/bundle/sources/source.js';
import { EngineMetrics } from '../../engine/observability/metrics.js';
import { BundleActivator } from '../../engine/policy/activator.js';
import { PolicyEvaluator } from '../../engine/policy/evaluator.js';
import { buildBundle, makeTempDir, packBundle, removeDir, repoRoot, writeTree } from '../helpers/opa.js';
import { waitFor } from '../helpers/wait.js';

const ENTRYPOINT = 'gatehouse/http/decision';
const INPUT = { identity: { sub: 'agent-1' } };

let dir: string;
let privateKey: string;
let publicKey: string;

/** A bundle of the reload fixture whose decision is `action`, at `revision`. */
function bundle(revision: string, action = 'allow', extra: string[] = []): Buffer {
  const src = join(dir, `src-${revision}`);
  writeTree(src, {
    'policy.rego': readFileSync(join(repoRoot, 'tests/fixtures/policies/reload/policy.rego')),
    'data.json': JSON.stringify({ reload: { action, reason: `from ${revision}` } }),
  });
  return buildBundle(src, ['-b', '-t', 'wasm', '-e', ENTRYPOINT, '-r', revision, ...extra]);
}

function signed(revision: string, action = 'allow'): Buffer {
  return bundle(revision, action, ['--signing-key', join(dir, 'private.pem'), '--signing-alg', 'RS256']);
}

/** Replaces a file the way `make bundle` does: write aside, then rename over. */
function publish(path: string, body: Buffer): void {
  writeFileSync(`${path}.tmp`, body);
  renameSync(`${path}.tmp`, path);
}

interface Harness {
  evaluator: PolicyEvaluator;
  metrics: EngineMetrics;
  activator: BundleActivator;
  revision(): string | null;
  rejections(reason: string): Promise<number>;
}

function harness(verification?: BundleVerification): Harness {
  const metrics = new EngineMetrics();
  const evaluator = new PolicyEvaluator({ timeoutMs: 1000, metrics });
  const activator = new BundleActivator(evaluator, {
    verification,
    requiredEntrypoints: [ENTRYPOINT],
    logger: pino({ level: 'silent' }),
    metrics,
  });
  return {
    evaluator,
    metrics,
    activator,
    revision: () => evaluator.policy?.revision ?? null,
    async rejections(reason) {
      const metric = await metrics.registry.getSingleMetric('gatehouse_bundle_rejections_total')?.get();
      return metric?.values.find((v) => v.labels.reason === reason)?.value ?? 0;
    },
  };
}

const sources: BundleSource[] = [];
function started<T extends BundleSource>(source: T, h: Harness): T {
  sources.push(source);
  source.start(h.activator);
  return source;
}

beforeAll(() => {
  dir = makeTempDir('gatehouse-reload-');
  const keys = generateKeyPairSync('rsa', { modulusLength: 2048 });
  privateKey = keys.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  publicKey = keys.publicKey.export({ type: 'spki', format: 'pem' }).toString();
  writeFileSync(join(dir, 'private.pem'), privateKey);
});
afterEach(async () => {
  await Promise.all(sources.splice(0).map((s) => s.stop()));
});
afterAll(() => removeDir(dir));

describe('file bundle source', () => {
  it('loads the bundle, then follows every replacement without a restart', async () => {
    const path = join(dir, 'watched.tar.gz');
    publish(path, bundle('rev-a'));
    const h = harness();
    started(new FileBundleSource(path, { intervalMs: 20 }), h);
    await waitFor(() => h.revision() === 'rev-a', 'rev-a');
    expect(h.evaluator.evaluate(ENTRYPOINT, INPUT).decision).toMatchObject({ action: 'allow', reasons: ['from rev-a'] });

    publish(path, bundle('rev-b', 'deny'));
    await waitFor(() => h.revision() === 'rev-b', 'rev-b');
    expect(h.evaluator.evaluate(ENTRYPOINT, INPUT).decision).toMatchObject({ action: 'deny', reasons: ['from rev-b'] });
  });

  it('keeps the active bundle when the file turns to garbage, and says why', async () => {
    const path = join(dir, 'garbage.tar.gz');
    publish(path, bundle('good'));
    const h = harness();
    started(new FileBundleSource(path, { intervalMs: 20 }), h);
    await waitFor(() => h.revision() === 'good', 'good bundle');

    publish(path, Buffer.from('this is not a tarball'));
    await waitFor(async () => (await h.rejections('corrupt')) === 1, 'rejection');
    expect(h.revision()).toBe('good');
    expect(h.evaluator.evaluate(ENTRYPOINT, INPUT).metadata.failure).toBeUndefined();

    publish(path, bundle('better'));
    await waitFor(() => h.revision() === 'better', 'recovery');
  });

  it('watches an unpacked bundle directory', async () => {
    const bundleDir = join(dir, 'unpacked');
    mkdirSync(bundleDir);
    writeTree(bundleDir, await readBundleArchive(bundle('dir-1')));
    const h = harness();
    started(new FileBundleSource(bundleDir, { intervalMs: 20 }), h);
    await waitFor(() => h.revision() === 'dir-1', 'dir-1');

    writeTree(bundleDir, await readBundleArchive(bundle('dir-2', 'deny')));
    await waitFor(() => h.revision() === 'dir-2', 'dir-2');
    expect(h.evaluator.evaluate(ENTRYPOINT, INPUT).decision.action).toBe('deny');
  });
});

describe('activation', () => {
  const verification = (): BundleVerification => ({ required: true, keys: [{ id: 'default', algorithm: 'RS256', key: publicKey }] });

  it('activates signed bundles and refuses tampered and unsigned ones, keeping the old policy', async () => {
    const h = harness(verification());
    expect(await h.activator.deliver(await readBundleArchive(signed('signed-1')))).toEqual({ status: 'activated', revision: 'signed-1' });
    expect(h.evaluator.policy?.bundle.signature).toEqual({ state: 'verified', keyId: 'default' });

    const files = await readBundleArchive(signed('signed-2', 'deny'));
    files.set('data.json', Buffer.from(JSON.stringify({ reload: { action: 'allow', reason: 'forged' } })));
    const tampered = await h.activator.deliver(files);
    expect(tampered).toMatchObject({ status: 'rejected', error: { kind: 'tampered' } });

    const unsigned = await h.activator.deliver(await readBundleArchive(bundle('unsigned')));
    expect(unsigned).toMatchObject({ status: 'rejected', error: { kind: 'unsigned' } });

    expect(h.revision()).toBe('signed-1');
    expect(h.evaluator.evaluate(ENTRYPOINT, INPUT).decision.reasons).toEqual(['from signed-1']);
    expect(await h.rejections('tampered')).toBe(1);
    expect(await h.rejections('unsigned')).toBe(1);
  });

  it('refuses a tampered bundle arriving through the file source', async () => {
    const path = join(dir, 'signed.tar.gz');
    publish(path, signed('signed-a'));
    const h = harness(verification());
    started(new FileBundleSource(path, { intervalMs: 20 }), h);
    await waitFor(() => h.revision() === 'signed-a', 'signed-a');

    const files = await readBundleArchive(signed('signed-b'));
    files.set('policy.wasm', Buffer.concat([files.get('policy.wasm')!, Buffer.from([0])]));
    publish(path, await packBundle(files));
    await waitFor(async () => (await h.rejections('tampered')) === 1, 'tampered rejection');
    expect(h.revision()).toBe('signed-a');
  });

  it('refuses a bundle that lacks a required entrypoint', async () => {
    const h = harness();
    const src = join(dir, 'other-entrypoint');
    writeTree(src, { 'p.rego': 'package other\n\ndecision := {"action": "allow"}\n' });
    const result = await h.activator.deliver(await readBundleArchive(buildBundle(src, ['-t', 'wasm', '-e', 'other/decision'])));
    expect(result).toMatchObject({ status: 'rejected', error: { kind: 'invalid_policy' } });
    expect(result.status === 'rejected' && result.error.message).toMatch(/lacks entrypoint\(s\) gatehouse\/http\/decision/);
  });

  it('does not reactivate an identical bundle', async () => {
    const h = harness();
    const files = await readBundleArchive(bundle('same'));
    expect((await h.activator.deliver(files)).status).toBe('activated');
    expect((await h.activator.deliver(files)).status).toBe('unchanged');
  });

  it('never fails an evaluation while bundles are swapped under load', async () => {
    const h = harness();
    const a = await readBundleArchive(bundle('swap-a'));
    const b = await readBundleArchive(bundle('swap-b', 'deny'));
    await h.activator.deliver(a);

    const seen = new Map<string, number>();
    let failures = 0;
    let running = true;
    const load = (async () => {
      while (running) {
        for (let i = 0; i < 200; i++) {
          const { decision, metadata } = h.evaluator.evaluate(ENTRYPOINT, INPUT);
          if (metadata.failure) failures++;
          // Each decision must come wholly from the bundle that metadata names.
          if (decision.reasons[0] !== `from ${metadata.bundle_revision}`) failures++;
          seen.set(metadata.bundle_revision!, (seen.get(metadata.bundle_revision!) ?? 0) + 1);
        }
        await new Promise((r) => setImmediate(r));
      }
    })();
    for (let i = 0; i < 10; i++) {
      await h.activator.deliver(i % 2 === 0 ? b : a);
      await new Promise((r) => setImmediate(r));
    }
    running = false;
    await load;
    expect(failures).toBe(0);
    expect([...seen.keys()].sort()).toEqual(['swap-a', 'swap-b']);
  });
});

describe('HTTP bundle source (OPA bundle protocol)', () => {
  let server: Server;
  let current: { etag: string; body: Buffer } | { status: number };
  const requests: { ifNoneMatch: string | undefined; authorization: string | undefined }[] = [];

  beforeAll(async () => {
    server = createServer((req, res) => {
      requests.push({ ifNoneMatch: req.headers['if-none-match'], authorization: req.headers.authorization });
      if ('status' in current) {
        res.writeHead(current.status).end('unavailable');
      } else if (req.headers['if-none-match'] === current.etag) {
        res.writeHead(304).end();
      } else {
        res.writeHead(200, { etag: current.etag, 'content-type': 'application/gzip' }).end(current.body);
      }
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
  });
  afterAll(() => server.close());

  it('sends If-None-Match, treats 304 as unchanged, reloads on a new ETag and survives server errors', async () => {
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/bundles/gatehouse.tar.gz`;
    current = { etag: '"v1"', body: bundle('http-1') };
    const h = harness();
    const { Secret } = await import('../../engine/config/secret.js');
    started(new HttpBundleSource(url, { minDelayMs: 10, maxDelayMs: 20, token: new Secret('bundle-token', 'test') }), h);

    await waitFor(() => h.revision() === 'http-1', 'http-1');
    await waitFor(() => requests.filter((r) => r.ifNoneMatch === '"v1"').length >= 2, 'conditional polls');
    expect(requests[0]).toEqual({ ifNoneMatch: undefined, authorization: 'Bearer bundle-token' });
    expect(h.metrics.registry.getSingleMetric('gatehouse_bundle_reloads_total')).toBeDefined();

    current = { status: 503 };
    await waitFor(async () => (await h.rejections('unreadable')) >= 1, 'server error reported');
    expect(h.revision()).toBe('http-1');

    current = { etag: '"v2"', body: bundle('http-2', 'deny') };
    await waitFor(() => h.revision() === 'http-2', 'http-2');
    expect(h.evaluator.evaluate(ENTRYPOINT, INPUT).decision.action).toBe('deny');
  });

  it('hides credentials in the URL from its location', () => {
    expect(new HttpBundleSource('https://user:pw@bundles.example.com/b.tar.gz', { minDelayMs: 1, maxDelayMs: 2 }).location).toBe(
      'https://bundles.example.com/b.tar.gz',
    );
  });
});
