// The official @hpkv/rest-client, unmodified, against a real ripplekv.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { HPKVRestClient } from '@hpkv/rest-client';
import { API_KEY, startServer } from './server.mjs';

describe('@hpkv/rest-client', () => {
  let server;
  let client;

  before(async () => {
    server = await startServer();
    client = new HPKVRestClient(server.baseUrl, server.baseUrl, API_KEY);
  });

  after(async () => {
    await server?.dispose();
  });

  test('set, get and delete, with keys that need encoding', async () => {
    for (const key of ['plain', 'with space', 'a/b/c', 'q?x=1&y=2', 'pct%2F', 'plus+sign', 'ünï ✓']) {
      const set = await client.set(key, `value of ${key}`);
      assert.equal(set.success, true, key);
      const got = await client.get(key);
      assert.equal(got.key, key);
      assert.equal(got.value, `value of ${key}`);
    }
    const deleted = await client.delete('a/b/c');
    assert.equal(deleted.success, true);
    await assert.rejects(client.get('a/b/c'), (err) => err.status === 404 && err.message === 'Record not found');
  });

  test('objects and partial updates', async () => {
    await client.set('user:1', { name: 'John', email: 'j@example.com' });
    await client.set('user:1', { email: 'new@example.com', address: 'Somewhere' }, true);
    const got = await client.get('user:1');
    assert.deepEqual(JSON.parse(got.value), { name: 'John', email: 'new@example.com', address: 'Somewhere' });
  });

  test('atomic increment', async () => {
    assert.equal((await client.atomicIncrement('counter', 10)).result, 10);
    assert.equal((await client.atomicIncrement('counter', -3)).result, 7);
  });

  test('range over keys with special characters (double-encoded by the client)', async () => {
    const keys = ['r a+b/1', 'r a+b/2', 'r a+b/3'];
    for (const key of keys) await client.set(key, key);
    const page = await client.range('r a+b/1', 'r a+b/3', 2);
    assert.equal(page.count, 2);
    assert.equal(page.truncated, true);
    assert.deepEqual(page.records.map((r) => r.key), keys.slice(0, 2));
    const all = await client.range('r a+b/1', 'r a+b/3');
    assert.deepEqual(all.records.map((r) => r.value), keys);
  });

  test('errors carry status and the server message', async () => {
    await client.set('text', 'abc');
    await assert.rejects(client.atomicIncrement('text', 1), (err) => err.status === 400 && /integer/.test(err.message));
    await assert.rejects(client.set('big', 'x'.repeat(102400)), (err) => err.status === 400);
    const stranger = new HPKVRestClient(server.baseUrl, server.baseUrl, 'wrong-key');
    await assert.rejects(stranger.get('text'), (err) => err.status === 401);
    assert.equal((await client.get('text')).value, 'abc');
  });
});
