// What the browser test files share: one headless Chromium, signing in like a person
// would, and where screenshots go.
import { mkdir } from 'node:fs/promises';
import { chromium } from 'playwright-core';
import { API_KEY } from './server.mjs';

export const ARTIFACTS = new URL('../artifacts/', import.meta.url).pathname;
export const WAIT = { timeout: 15_000 };
const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';

export async function launchBrowser() {
  await mkdir(ARTIFACTS, { recursive: true });
  return chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
  });
}

export const live = (page) => page.waitForSelector('[data-testid=connection][data-state=live]', WAIT);

/** A page in its own context (its own storage), signed in with the API key. */
export async function signedIn(browser, baseUrl, contextOptions = {}) {
  const context = await browser.newContext(contextOptions);
  const page = await context.newPage();
  page.on('pageerror', (error) => console.error('page error:', error.message));
  await page.goto(baseUrl);
  await page.getByTestId('api-key').fill(API_KEY);
  await page.getByTestId('connect').click();
  await live(page);
  return page;
}

/** `YYYY-MM-DD` of the local day `offset` days from today, as the page names its keys. */
export function isoDay(offset) {
  const date = new Date();
  date.setHours(12, 0, 0, 0);
  date.setDate(date.getDate() + offset);
  const pad = (n) => String(n).padStart(2, '0');
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}`;
}
