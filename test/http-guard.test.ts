// The local servers' guards: a malformed path gets 400 and the server stays
// up (`GET /%` used to kill `serve` with an uncaught URIError), and only Host
// headers that name the server are answered (DNS rebinding).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, request } from 'node:http';
import type { AddressInfo } from 'node:net';
import { hostAllowed, isLoopbackHost, requestPath } from '../src/util/http-guard.js';
import { servePage, type PageFiles } from '../src/web/serve.js';
import { readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startSampling } from '../src/cli/commands/serve.js';
import { train } from '../src/train/train.js';
import { cleanup, durationForSteps, makeTempDir, tinyTrainRequest, writeShapeImages } from './helpers/train-fixtures.js';

test('hostAllowed: loopback names on a loopback server; the bound address elsewhere; anything on every interface', () => {
  for (const h of ['localhost', 'localhost:8080', '127.0.0.1:8080', '127.1.2.3', '[::1]:8080', 'LOCALHOST']) assert.ok(hostAllowed('127.0.0.1', h), h);
  for (const h of ['evil.com', '127.evil.com', '127.0.0.1.evil.com', 'localhost.evil.com', '10.0.0.5', '', '[::2]:80']) assert.ok(!hostAllowed('127.0.0.1', h), h);
  assert.ok(!hostAllowed('127.0.0.1', undefined));
  assert.ok(hostAllowed('10.0.0.5', '10.0.0.5:6060') && hostAllowed('10.0.0.5', 'localhost') && !hostAllowed('10.0.0.5', 'evil.com'));
  assert.ok(hostAllowed('0.0.0.0', 'any.name') && hostAllowed('::', undefined));
  assert.ok(isLoopbackHost('127.0.0.1') && !isLoopbackHost('127.evil.com'));
});

test('requestPath: decoded, or null for what does not decode', () => {
  assert.equal(requestPath('/a%20b?x=1'), '/a b');
  assert.equal(requestPath('/%'), null);
  assert.equal(requestPath('/%E0%A4%A'), null);
  assert.equal(requestPath(undefined), '/');
});

function get(port: number, path: string, host = `127.0.0.1:${port}`): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, headers: { host } }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', reject);
    req.end();
  });
}

test('serve answers malformed requests with 400 and stays up; a foreign Host gets 403', async () => {
  const files: PageFiles = new Map([['index.html', { content: '<!doctype html>ok' }]]);
  const server = await servePage(files, { host: '127.0.0.1', port: 0 });
  try {
    const { port } = server.address() as AddressInfo;
    assert.equal(await get(port, '/%'), 400);
    assert.equal(await get(port, '/%E0%A4%A'), 400);
    assert.equal(await get(port, '/'), 200, 'still serving');
    assert.equal(await get(port, '/', 'evil.com'), 403);
    assert.equal(await get(port, '/', '127.evil.com'), 403);
    assert.equal(await get(port, '/nope'), 404);
  } finally {
    await new Promise((done) => server.close(done));
  }
});

test('serve on a port in use fails with the reason and leaves no temporary export', async () => {
  const tmp = makeTempDir('pd-serve-port-');
  const blocker = createServer(() => {});
  await new Promise<void>((done) => blocker.listen(0, '127.0.0.1', done));
  try {
    const data = await writeShapeImages(join(tmp, 'data'), { count: 8, size: 16, channels: 1 });
    const run = await train(tinyTrainRequest(data, join(tmp, 'runs'), { duration: durationForSteps(1) }));
    const exports = () => readdirSync(tmpdir()).filter((f) => f.startsWith('pd-serve-')).sort();
    const before = exports();
    const { port } = blocker.address() as AddressInfo;
    await assert.rejects(startSampling({ network: run!.runDir, port }), new RegExp(`port ${port} on 127\\.0\\.0\\.1 is in use`));
    assert.deepEqual(exports(), before, 'the temporary export is gone');
  } finally {
    blocker.close();
    cleanup(tmp);
  }
});
