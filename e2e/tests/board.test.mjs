// The live todo board in a real headless Chromium, two users at once.
import assert from 'node:assert/strict';
import { mkdir } from 'node:fs/promises';
import { after, before, describe, test } from 'node:test';
import { chromium } from 'playwright-core';
import { API_KEY, startServer } from './server.mjs';

const ARTIFACTS = new URL('../artifacts/', import.meta.url).pathname;
const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';
const WAIT = { timeout: 15_000 };

describe('live todo board', () => {
  let server;
  let browser;
  let alice;
  let bob;

  before(async () => {
    await mkdir(ARTIFACTS, { recursive: true });
    server = await startServer();
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
    });
    alice = await open();
    bob = await open();
  });

  after(async () => {
    await browser?.close();
    await server?.dispose();
  });

  /** A separate browser context (its own storage), signed in like a person would. */
  async function open() {
    const context = await browser.newContext({ viewport: { width: 1600, height: 900 } });
    const page = await context.newPage();
    page.on('pageerror', (error) => console.error('page error:', error.message));
    await page.goto(server.baseUrl);
    await page.getByTestId('api-key').fill(API_KEY);
    await page.getByTestId('connect').click();
    await live(page);
    return page;
  }

  const live = (page) => page.waitForSelector('[data-testid=connection][data-state=live]', WAIT);
  const day = (page, index) => page.locator('.day').nth(index);
  const todos = (page, index) => day(page, index).getByTestId('todo');

  async function add(page, index, text, priority = 'medium') {
    const column = day(page, index);
    await column.getByTestId('add-input').fill(text);
    await column.getByTestId('add-priority').selectOption(priority);
    await column.getByTestId('add-button').click();
  }

  async function storedTodos(index) {
    const iso = await day(alice, index).getAttribute('data-day');
    const response = await fetch(`${server.baseUrl}/record/todos-${iso}`, { headers: { 'x-api-key': API_KEY } });
    return response.status === 404 ? [] : JSON.parse((await response.json()).value);
  }

  test('shows yesterday, today and the next five days, with today marked', async () => {
    assert.equal(await alice.locator('.day').count(), 7);
    assert.equal(await day(alice, 1).getAttribute('class'), 'day today');
    const iso = await day(alice, 1).getAttribute('data-day');
    const now = new Date();
    const pad = (n) => String(n).padStart(2, '0');
    assert.equal(iso, `${now.getFullYear()}-${pad(now.getMonth() + 1)}-${pad(now.getDate())}`);
  });

  test('add, edit, prioritise, complete and delete in one browser; the other sees each', async () => {
    await add(alice, 1, 'Buy milk', 'low');
    const bobsTodo = todos(bob, 1).filter({ hasText: 'Buy milk' });
    await bobsTodo.waitFor(WAIT);
    assert.equal(await bobsTodo.getAttribute('data-priority'), 'low');

    await todos(alice, 1).getByTestId('todo-text').click();
    await alice.getByTestId('edit-input').fill('Buy oat milk');
    await alice.getByTestId('edit-input').press('Enter');
    await todos(bob, 1).filter({ hasText: 'Buy oat milk' }).waitFor(WAIT);

    await todos(alice, 1).getByTestId('todo-priority').click();
    await bob.waitForSelector('.day.today [data-testid=todo][data-priority=medium]', WAIT);

    await todos(alice, 1).getByTestId('todo-status').click();
    await bob.waitForSelector('.day.today [data-testid=todo][data-status="in progress"]', WAIT);
    await todos(alice, 1).getByTestId('todo-status').click();
    await bob.waitForSelector('.day.today [data-testid=todo][data-status=done]', WAIT);

    await todos(alice, 1).getByTestId('todo-delete').click();
    await bob.waitForFunction(() => document.querySelectorAll('.day.today [data-testid=todo]').length === 0, null, WAIT);
    assert.deepEqual(await storedTodos(1), []);
  });

  test('two people adding 20 todos each to the same day at the same moment keep all 40', async () => {
    const burst = (page, who) => (async () => {
      for (let i = 0; i < 20; i++) await add(page, 2, `${who} #${i}`);
    })();
    await Promise.all([burst(alice, 'alice'), burst(bob, 'bob')]);
    for (const page of [alice, bob]) {
      await page.waitForFunction(
        () => document.querySelectorAll('.day:nth-child(3) [data-testid=todo]').length === 40, null, WAIT);
    }
    const stored = await storedTodos(2);
    assert.equal(stored.length, 40);
    assert.equal(new Set(stored.map((todo) => todo.id)).size, 40);
    for (const todo of stored) {
      assert.deepEqual(Object.keys(todo).sort(), ['created', 'id', 'priority', 'status', 'text']);
      assert.equal(todo.status, 'not set');
    }
  });

  test('after the server restarts, pages reconnect and show what changed while they were away', async () => {
    await server.stop();
    await alice.waitForSelector('[data-testid=connection][data-state=connecting]', WAIT);
    await bob.waitForSelector('[data-testid=connection][data-state=connecting]', WAIT);
    await server.restart();
    // Written as soon as the server is back, typically before the pages reconnect:
    // they must pick it up by resuming their subscription (or live, if they were quick).
    const iso = await day(alice, 3).getAttribute('data-day');
    const todo = { id: 'from-rest', text: 'Added while you were away', priority: 'high', status: 'not set', created: new Date().toISOString() };
    const response = await fetch(`${server.baseUrl}/record`, {
      method: 'POST',
      headers: { 'x-api-key': API_KEY },
      body: JSON.stringify({ key: `todos-${iso}`, value: JSON.stringify([todo]) }),
    });
    assert.equal(response.status, 200);
    for (const page of [alice, bob]) {
      await live(page);
      await todos(page, 3).filter({ hasText: 'Added while you were away' }).waitFor(WAIT);
      assert.equal(await todos(page, 2).count(), 40, 'nothing was lost across the restart');
    }
    await add(bob, 3, 'After the restart', 'high');
    await todos(alice, 3).filter({ hasText: 'After the restart' }).waitFor(WAIT);
  });

  test('a todo added while the server is down stays in the form until it is saved, then is saved once', async () => {
    const text = 'Written while the server was down';
    const column = day(alice, 4);
    const note = column.getByTestId('add-note');
    await server.stop();
    try {
      await alice.waitForSelector('[data-testid=connection][data-state=connecting]', WAIT);
      await add(alice, 4, text, 'high');
      await note.waitFor(WAIT);
      assert.match(await note.textContent(), /Not saved yet/);
      assert.equal(await column.getByTestId('add-input').inputValue(), text, 'the text is kept');
      assert.equal(await column.getByTestId('add-priority').inputValue(), 'high', 'the priority is kept');
      assert.equal(await todos(alice, 4).count(), 0);
    } finally {
      await server.restart(); // even if an assertion failed, so later tests have a server
    }
    await live(alice);
    // Saved once the page is back: the form empties only when the server has it.
    await alice.waitForFunction(
      () => document.querySelector('.day:nth-child(5) [data-testid=add-input]').value === '', null, WAIT);
    assert.equal(await note.isVisible(), false);
    const stored = (await storedTodos(4)).filter((todo) => todo.text === text);
    assert.equal(stored.length, 1, 'saved exactly once');
    assert.equal(stored[0].priority, 'high');
    for (const page of [alice, bob]) {
      await live(page);
      await todos(page, 4).filter({ hasText: text }).waitFor(WAIT);
      assert.equal(await todos(page, 4).filter({ hasText: text }).count(), 1);
    }
    // Adding again on a healthy connection empties the form at once, as before.
    await add(alice, 4, 'And one more', 'low');
    await todos(bob, 4).filter({ hasText: 'And one more' }).waitFor(WAIT);
    assert.equal(await column.getByTestId('add-input').inputValue(), '');
    assert.equal((await storedTodos(4)).filter((todo) => todo.text === text).length, 1, 'still once');
  });

  test('a wrong key is explained plainly', async () => {
    const context = await browser.newContext();
    const page = await context.newPage();
    await page.goto(server.baseUrl);
    await page.getByTestId('api-key').fill('not-the-key');
    await page.getByTestId('connect').click();
    const error = page.getByTestId('key-error');
    await error.waitFor(WAIT);
    assert.match(await error.textContent(), /refused that API key \(401\)/);
    await context.close();
  });

  test('a wrong key is shown as an error, in both themes', async () => {
    for (const colorScheme of ['light', 'dark']) {
      const context = await browser.newContext({ colorScheme, viewport: { width: 900, height: 600 } });
      const page = await context.newPage();
      await page.goto(server.baseUrl);
      await page.getByTestId('api-key').fill('not-the-key');
      await page.getByTestId('connect').click();
      const error = page.getByRole('alert').filter({ hasText: 'refused that API key' });
      await error.waitFor(WAIT);
      assert.ok(await error.isVisible());
      assert.equal(await error.getAttribute('data-testid'), 'key-error');
      // Styled as an error: a red text and border, not plain grey text.
      const look = await error.evaluate((node) => {
        const style = getComputedStyle(node);
        const rgb = (color) => color.match(/\d+(\.\d+)?/g).slice(0, 3).map(Number);
        const muted = document.createElement('span');
        muted.style.color = 'var(--muted)';
        node.after(muted);
        const mutedColor = getComputedStyle(muted).color;
        muted.remove();
        return { text: rgb(style.color), border: rgb(style.borderLeftColor), borderWidth: parseFloat(style.borderLeftWidth), muted: mutedColor, color: style.color };
      });
      const red = ([r, g, b]) => r > g + 60 && r > b + 60;
      assert.ok(red(look.text), `${colorScheme}: the message is ${look.color}, not an error colour`);
      assert.notEqual(look.color, look.muted);
      assert.ok(red(look.border) && look.borderWidth >= 2, `${colorScheme}: the message has no error border`);
      await page.screenshot({ path: `${ARTIFACTS}wrong-key-${colorScheme}.png` });
      await context.close();
    }
  });

  test('screenshots of both themes (saved as artifacts); the theme is remembered', async () => {
    await day(alice, 1).getByTestId('add-input').fill('');
    await add(alice, 1, 'Ship the live demo', 'high');
    await add(alice, 1, 'Write the announcement');
    await todos(alice, 1).first().getByTestId('todo-status').click();
    await alice.waitForSelector('.day.today [data-testid=todo][data-status="in progress"]', WAIT);
    const theme = () => alice.evaluate(() => document.documentElement.dataset.theme);
    const shoot = async (name) => {
      await alice.evaluate(() => { document.activeElement?.blur(); window.scrollTo(0, 0); });
      await alice.screenshot({ path: `${ARTIFACTS}${name}` });
    };
    if ((await theme()) !== 'light') await alice.getByTestId('theme-toggle').click();
    await shoot('board-light.png');
    await alice.getByTestId('theme-toggle').click();
    assert.equal(await theme(), 'dark');
    await alice.reload();
    await live(alice);
    assert.equal(await theme(), 'dark', 'the theme survives a reload');
    await shoot('board-dark.png');
  });
});
