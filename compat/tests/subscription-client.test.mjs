// The official @hpkv/websocket-client subscription flow, unmodified: a token from
// WebsocketTokenManager, notifications, access control, and reconnects with the token.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { HPKVClientFactory, WebsocketTokenManager } from '@hpkv/websocket-client';
import { API_KEY, startServer } from './server.mjs';

const fast = { throttling: { enabled: false } };

/** Resolves with the first `count` notifications the client receives. */
function collect(client, count) {
  const received = [];
  return new Promise((resolve) => {
    client.subscribe((notification) => {
      received.push(notification);
      if (received.length === count) resolve(received);
    });
  });
}

describe('@hpkv/websocket-client subscriptions', () => {
  let server;
  let api;
  const clients = [];

  before(async () => {
    server = await startServer();
    api = HPKVClientFactory.createApiClient(API_KEY, server.baseUrl, fast);
    await api.connect();
  });

  after(async () => {
    for (const client of [api, ...clients]) {
      await client.disconnect().catch(() => {});
      client.destroy();
    }
    await server?.dispose();
  });

  async function subscriber(config) {
    const token = await new WebsocketTokenManager(API_KEY, server.baseUrl).generateToken(config);
    assert.match(token, /^[A-Za-z0-9_-]+$/);
    const client = HPKVClientFactory.createSubscriptionClient(token, server.baseUrl, fast);
    clients.push(client);
    await client.connect();
    return { client, token };
  }

  test('notifications for subscribed keys, with the value of each op', async () => {
    const { client } = await subscriber({ subscribeKeys: ['todo:1'], subscribePatterns: ['count:*'] });
    const received = collect(client, 5);
    await api.set('todo:1', { title: 'write tests' });
    await api.set('todo:1', { done: true }, true);
    await api.set('elsewhere', 'not subscribed');
    await api.atomicIncrement('count:a', 5);
    await api.set('todo:1', 'plain');
    await api.delete('todo:1');
    const notes = await received;
    assert.deepEqual(
      notes.map((n) => [n.type, n.key, n.value]),
      [
        ['notification', 'todo:1', JSON.stringify({ title: 'write tests' })],
        ['notification', 'todo:1', JSON.stringify({ done: true })],
        ['notification', 'count:a', '5'],
        ['notification', 'todo:1', 'plain'],
        ['notification', 'todo:1', null],
      ],
    );
    for (const note of notes) assert.equal(typeof note.timestamp, 'number');
  });

  test('a token connection works on its access pattern and gets 403 elsewhere', async () => {
    const { client } = await subscriber({ subscribePatterns: ['room:*'], accessPattern: '^room:*$' });
    const own = collect(client, 1);
    assert.equal((await client.set('room:1', 'hello')).code, 200);
    assert.equal((await own)[0].value, 'hello', 'the writer hears its own write');
    assert.equal((await client.get('room:1')).value, 'hello');
    await assert.rejects(
      client.get('secret'),
      (err) => err.code === 403 && err.message === 'Access denied: Key does not match allowed pattern',
    );
    await assert.rejects(client.set('secret', 'x'), (err) => err.code === 403);
    const page = await client.range('a', 'z');
    assert.ok(page.records.every((record) => record.key.startsWith('room:')));
  });

  test('reconnecting with the same token keeps notifications coming', async () => {
    const { client } = await subscriber({ subscribeKeys: ['again'] });
    await client.disconnect();
    await client.connect();
    const received = collect(client, 1);
    await api.set('again', 'after reconnect');
    assert.equal((await received)[0].value, 'after reconnect');
  });

  test('an invalid token is refused at connect with 403', async () => {
    const client = HPKVClientFactory.createSubscriptionClient('bm90LWEtdG9rZW4', server.baseUrl, {
      maxReconnectAttempts: 0,
    });
    await assert.rejects(client.connect(), /403/);
    client.destroy();
  });

  test('a token needs a valid API key', async () => {
    const manager = new WebsocketTokenManager('wrong-key', server.baseUrl);
    await assert.rejects(manager.generateToken({ subscribeKeys: ['x'] }), /401/);
  });
});
