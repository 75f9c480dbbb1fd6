// The official @hpkv/websocket-client, unmodified, against a real ripplekv.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { HPKVClientFactory } from '@hpkv/websocket-client';
import { API_KEY, startServer } from './server.mjs';

describe('@hpkv/websocket-client API client', () => {
  let server;
  let client;

  before(async () => {
    server = await startServer();
    // The SDK throttles itself to 10 requests/s by default; the server does not need it.
    client = HPKVClientFactory.createApiClient(API_KEY, server.baseUrl, { throttling: { enabled: false } });
    await client.connect();
  });

  after(async () => {
    await client?.disconnect();
    client?.destroy();
    await server?.dispose();
  });

  test('set and get', async () => {
    const set = await client.set('user:1', 'Ada Lovelace ✓');
    assert.equal(set.code, 200);
    assert.equal(set.success, true);
    const got = await client.get('user:1');
    assert.equal(got.code, 200);
    assert.equal(got.key, 'user:1');
    assert.equal(got.value, 'Ada Lovelace ✓');
  });

  test('objects are stored as JSON and partial updates merge them', async () => {
    await client.set('profile', { name: 'Ada', langs: ['en'], address: { city: 'London' } });
    const patched = await client.set('profile', { address: { zip: 'N1' }, langs: ['en', 'fr'] }, true);
    assert.equal(patched.code, 200);
    const got = await client.get('profile');
    assert.deepEqual(JSON.parse(got.value), {
      name: 'Ada',
      langs: ['en', 'fr'],
      address: { city: 'London', zip: 'N1' },
    });
  });

  test('partial update of a string appends', async () => {
    await client.set('log', 'one;');
    await client.set('log', 'two;', true);
    assert.equal((await client.get('log')).value, 'one;two;');
  });

  test('delete, then get and delete are 404', async () => {
    await client.set('temp', 'x');
    const deleted = await client.delete('temp');
    assert.equal(deleted.success, true);
    await assert.rejects(client.get('temp'), (err) => err.code === 404 && /Record not found/.test(err.message));
    await assert.rejects(client.delete('temp'), (err) => err.code === 404);
  });

  test('range with paging', async () => {
    for (let i = 0; i < 12; i++) {
      await client.set(`item:${String(i).padStart(2, '0')}`, `v${i}`);
    }
    const first = await client.range('item:00', 'item:99', { limit: 5 });
    assert.equal(first.code, 200);
    assert.equal(first.count, 5);
    assert.equal(first.truncated, true);
    assert.deepEqual(first.records.map((r) => r.key), ['item:00', 'item:01', 'item:02', 'item:03', 'item:04']);
    const rest = await client.range(`${first.records.at(-1).key}\u0000`, 'item:99', { limit: 100 });
    assert.equal(rest.count, 7);
    assert.equal(rest.truncated, false);
    const all = await client.range('item:00', 'item:99');
    assert.equal(all.count, 12);
  });

  test('atomic increments and decrements', async () => {
    const first = await client.atomicIncrement('visits', 5);
    assert.equal(first.code, 200);
    assert.equal(first.newValue, 5);
    const second = await client.atomicIncrement('visits', -7);
    assert.equal(second.newValue, -2);
    assert.equal((await client.get('visits')).value, '-2');
  });

  test('error paths reject with the server code and message', async () => {
    await client.set('text', 'not a number');
    await assert.rejects(client.atomicIncrement('text', 1), (err) => err.code === 400);
    await assert.rejects(client.set('big', 'x'.repeat(102400)), (err) => err.code === 400 && /limit/.test(err.message));
    await assert.rejects(client.set('', 'v'), (err) => err.code === 400);
    await assert.rejects(client.set('k', ''), (err) => err.code === 400);
    // The connection is still usable after errors.
    assert.equal((await client.get('text')).value, 'not a number');
  });

  test('concurrent requests are matched to their replies', async () => {
    const keys = Array.from({ length: 50 }, (_, i) => `par:${i}`);
    await Promise.all(keys.map((key) => client.set(key, key)));
    const values = await Promise.all(keys.map((key) => client.get(key)));
    assert.deepEqual(values.map((v) => v.value), keys);
  });
});

describe('@hpkv/websocket-client connection handling', () => {
  let server;

  before(async () => {
    server = await startServer();
  });

  after(async () => {
    await server?.dispose();
  });

  test('a wrong API key is refused at connect', async () => {
    const client = HPKVClientFactory.createApiClient('wrong-key', server.baseUrl, { maxReconnectAttempts: 0 });
    await assert.rejects(client.connect(), /401/);
    client.destroy();
  });

  test('an invalid token is refused at connect with 403', async () => {
    const client = HPKVClientFactory.createSubscriptionClient('not-a-token', server.baseUrl, { maxReconnectAttempts: 0 });
    await assert.rejects(client.connect(), /403/);
    client.destroy();
  });

  test('the client reconnects and keeps working (default config, throttling on)', async () => {
    const client = HPKVClientFactory.createApiClient(API_KEY, server.baseUrl);
    await client.connect();
    await client.set('before', '1');
    await client.disconnect();
    await client.connect();
    assert.equal((await client.get('before')).value, '1');
    await client.disconnect();
    client.destroy();
  });
});
