// The API reference page (/docs) in a real browser: Debian's chromium driven by playwright-core,
// against a running imgmeta API. Every request to another origin is aborted and fails the run;
// so does any console error (a Content-Security-Policy refusal is one) or page error. The page
// must render every operation of /openapi.json, grouped by tag, with the error codes listed.
//
//   CONSOLE_BASE_URL      the API, e.g. http://127.0.0.1:41234
//   CONSOLE_SCREENSHOTS   where the screenshot goes (optional)
//   CHROMIUM              the browser (default /usr/bin/chromium)
//
// Run: node tests/browser/docs.spec.mjs (playwright-core from tests/browser/package.json).
// Exit status 0 = all passed.

import { chromium } from 'playwright-core';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

const BASE = process.env.CONSOLE_BASE_URL;
if (!BASE) throw new Error('CONSOLE_BASE_URL is not set');
const ORIGIN = new URL(BASE).origin;
const SHOTS = process.env.CONSOLE_SCREENSHOTS;

function assert(condition, message) {
  if (!condition) throw new Error(message);
}

const blocked = [];
const problems = [];
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox'],
});
try {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  await context.route('**/*', (route) => {
    const url = route.request().url();
    if (new URL(url).origin === ORIGIN) return route.continue();
    blocked.push(url);
    return route.abort('blockedbyclient');
  });
  const page = await context.newPage();
  page.on('console', (message) => {
    if (message.type() === 'error') problems.push(`console: ${message.text()}`);
  });
  page.on('pageerror', (error) => problems.push(`page error: ${error.message}`));

  const response = await page.goto(`${BASE}/docs`);
  assert(response.status() === 200, `/docs answers ${response.status()}`);
  const csp = response.headers()['content-security-policy'] || '';
  assert(csp.startsWith("default-src 'self'"), `/docs CSP: ${csp}`);
  await page.waitForSelector('section.operation', { timeout: 15_000 });

  const contract = await (await fetch(`${BASE}/openapi.json`)).json();
  const expected = [];
  for (const [path, item] of Object.entries(contract.paths)) {
    for (const method of Object.keys(item)) expected.push(`${method.toUpperCase()} ${path}`);
  }
  const shown = await page.$$eval('section.operation h3', (headings) =>
    headings.map((h) => h.textContent.replace(/\s+/g, ' ').trim()));
  const missing = expected.filter((op) => !shown.includes(op));
  assert(missing.length === 0, `operations not rendered: ${missing.join(', ')}`);
  assert(shown.length === expected.length, `${shown.length} rendered, ${expected.length} documented`);

  // Grouped by tag, in the document's order of tags that have operations.
  const tags = await page.$$eval('section.tag > h2', (hs) => hs.map((h) => h.textContent));
  assert(tags.includes('jobs') && tags.includes('batches'), `tags: ${tags}`);

  // The error codes: the ErrorCode schema lists every code of the contract's enum.
  const codes = await page.$$eval('#schema-ErrorCode .enum li', (items) => items.map((i) => i.textContent));
  const enumCodes = contract.components.schemas.ErrorCode.enum;
  assert(codes.length === enumCodes.length, `${codes.length} codes shown, ${enumCodes.length} in the contract`);

  // The style applied (the stylesheet loaded under the CSP): the method badges are coloured.
  const badge = await page.$eval('.method-get', (el) => getComputedStyle(el).backgroundColor);
  assert(badge !== 'rgba(0, 0, 0, 0)', `method badge unstyled: ${badge}`);

  // A narrow screen: the page still renders without horizontal overflow of the body.
  await page.setViewportSize({ width: 375, height: 800 });
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert(overflow <= 1, `the page overflows a 375 px screen by ${overflow} px`);
  await page.setViewportSize({ width: 1280, height: 900 });

  if (SHOTS) {
    mkdirSync(SHOTS, { recursive: true });
    await page.screenshot({ path: join(SHOTS, 'docs.png') });
    console.log(`screenshot: ${join(SHOTS, 'docs.png')}`);
  }
  assert(blocked.length === 0, `requests to other origins: ${blocked.join(', ')}`);
  assert(problems.length === 0, problems.join('\n'));
  console.log(`docs: ${shown.length} operations rendered, ${codes.length} error codes listed`);
  console.log('1 passed, 0 failed');
} catch (error) {
  console.error(`docs: ${error.message}`);
  console.log('0 passed, 1 failed');
  process.exitCode = 1;
} finally {
  await browser.close();
}
