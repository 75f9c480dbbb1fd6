// The board's layout on a laptop and on a phone, in both themes: today's column is in
// view on load, the page never scrolls sideways, long todos are clamped but reachable,
// and day headers stay on one line. Screenshots are saved as artifacts.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { API_KEY, startServer } from './server.mjs';
import { ARTIFACTS, launchBrowser, signedIn, isoDay } from './browser.mjs';

const LONG = 'Draft the quarterly planning document for the storage team, including the '
  + 'compaction roadmap, the replication milestones, the on-call rota for the holidays and '
  + 'a summary of what we learned from the last two incidents';

const todo = (id, text, priority, status = 'not set') => ({ id, text, priority, status, created: '2025-01-01T09:00:00.000Z' });
const WEEK = {
  [-1]: [todo('y1', 'Book the venue', 'medium', 'done'), todo('y2', 'Send invoices', 'high', 'done')],
  0: [
    todo('t1', 'Write the release notes', 'high', 'in progress'),
    todo('t2', LONG, 'medium'),
    todo('t3', 'Water the plants', 'low', 'done'),
    todo('t4', 'Call the bank', 'medium'),
  ],
  1: [todo('m1', 'Plan the sprint', 'high'), todo('m2', 'Dentist at 10:30', 'medium')],
  2: [todo('d1', 'Team lunch', 'low')],
  3: [todo('d2', 'Quarterly review deck', 'high', 'in progress')],
  5: [todo('d3', 'Hike with Sam', 'low')],
};

describe('layout', () => {
  let server;
  let browser;

  before(async () => {
    server = await startServer();
    browser = await launchBrowser();
    for (const [offset, todos] of Object.entries(WEEK)) {
      const response = await fetch(`${server.baseUrl}/record`, {
        method: 'POST',
        headers: { 'x-api-key': API_KEY },
        body: JSON.stringify({ key: `todos-${isoDay(Number(offset))}`, value: JSON.stringify(todos) }),
      });
      assert.equal(response.status, 200);
    }
  });

  after(async () => {
    await browser?.close();
    await server?.dispose();
  });

  for (const [width, height] of [[1280, 800], [390, 844]]) {
    for (const theme of ['light', 'dark']) {
      test(`at ${width}x${height} (${theme}): today is in view, nothing overflows sideways, long todos are clamped`, async () => {
        const page = await signedIn(browser, server.baseUrl, { viewport: { width, height }, colorScheme: theme });
        assert.equal(await page.evaluate(() => document.documentElement.dataset.theme), theme);
        const today = page.locator('.day.today');
        await today.getByTestId('todo').nth(3).waitFor();

        const view = await page.evaluate(() => ({
          width: window.innerWidth,
          height: window.innerHeight,
          scrollWidth: document.documentElement.scrollWidth,
        }));
        assert.ok(view.scrollWidth <= view.width, `the page is ${view.scrollWidth}px wide in a ${view.width}px window`);
        const box = await today.boundingBox();
        assert.ok(box.x >= 0 && box.y >= 0 && box.x + box.width <= view.width && box.y + box.height <= view.height,
          `today's column ${JSON.stringify(box)} is not wholly inside the ${view.width}x${view.height} viewport`);
        if (width >= 1280) {
          // Wide enough for the whole week: every day is in view, none cut off.
          for (const column of await page.locator('.day').all()) {
            const { x, width: w } = await column.boundingBox();
            assert.ok(x >= 0 && x + w <= view.width, `a day at x=${x}, ${w}px wide, is cut off`);
          }
        }

        const headers = await page.locator('.day h2').evaluateAll((titles) => titles.map((title) => ({
          text: title.innerText,
          height: title.getBoundingClientRect().height,
          lineHeight: parseFloat(getComputedStyle(title).fontSize) * 1.6,
          cut: [...title.children].some((part) => part.offsetWidth > 0 && part.scrollWidth > part.clientWidth),
        })));
        for (const header of headers) {
          assert.ok(header.height <= header.lineHeight, `the header "${header.text}" takes more than one line`);
          assert.ok(!header.cut, `the header "${header.text}" is cut short`);
        }

        const long = today.getByTestId('todo').filter({ hasText: 'Draft the quarterly' }).getByTestId('todo-text');
        const shown = await long.evaluate((text) => ({
          lines: text.getBoundingClientRect().height / parseFloat(getComputedStyle(text).lineHeight),
          clipped: text.scrollHeight > text.clientHeight,
          title: text.title,
        }));
        assert.ok(shown.lines <= 3.1, `a long todo takes ${shown.lines.toFixed(1)} lines`);
        assert.ok(shown.clipped, 'the long todo is clamped');
        assert.ok(shown.title.includes(LONG), 'the whole text is in the title');

        await page.evaluate(() => { document.activeElement?.blur(); });
        await page.mouse.move(0, 0); // no hover effects in the picture
        const suffix = theme === 'dark' ? '-dark' : '';
        await page.screenshot({ path: `${ARTIFACTS}board-${width}${suffix}.png` });

        // Editing shows the whole text, with nothing hidden.
        await long.click();
        const edit = page.getByTestId('edit-input');
        assert.equal(await edit.inputValue(), LONG);
        const fits = await edit.evaluate((field) => field.scrollHeight <= field.clientHeight + 1);
        assert.ok(fits, 'the editor shows the whole text');
        await edit.press('Escape');
        await long.waitFor();
        await page.context().close();
      });
    }
  }
});
