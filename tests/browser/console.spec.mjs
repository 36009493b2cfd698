// The console in a real browser: Debian's chromium driven by playwright-core, against a
// running imgmeta (API and worker). Started by crates/imgmeta-cli/tests/e2e/console.rs, which
// passes the service and the fixtures in the environment:
//
//   CONSOLE_BASE_URL      the API, e.g. http://127.0.0.1:41234
//   CONSOLE_IMAGE_URL     an image with objects (fetched by the worker, never by the browser)
//   CONSOLE_EXIF_URL      an image with EXIF and GPS
//   CONSOLE_MISSING_URL   a URL the image server answers 404
//   CONSOLE_UPLOAD_FILE   a local image to upload
//   CONSOLE_FOREIGN_JOB   a job id of another account
//   CONSOLE_SCREENSHOTS   where the screenshots go
//   CHROMIUM              the browser (default /usr/bin/chromium)
//
// Every request the browser makes to another origin than the service is aborted and recorded;
// the run fails if there was any. Steps run in order (later ones use what earlier ones made);
// the first failure stops the run with a screenshot of the page. Exit status 0 = all passed.

import { chromium } from 'playwright-core';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

const env = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
};
const BASE = env('CONSOLE_BASE_URL');
const ORIGIN = new URL(BASE).origin;
const IMAGE_URL = env('CONSOLE_IMAGE_URL');
const EXIF_URL = env('CONSOLE_EXIF_URL');
const MISSING_URL = env('CONSOLE_MISSING_URL');
const UPLOAD_FILE = env('CONSOLE_UPLOAD_FILE');
const FOREIGN_JOB = env('CONSOLE_FOREIGN_JOB');
const SHOTS = env('CONSOLE_SCREENSHOTS');
const JOB_TIMEOUT = 120_000;

mkdirSync(SHOTS, { recursive: true });

const blocked = [];
const pageErrors = [];
const consoleErrors = [];
const state = {};
let passed = 0;

function assert(condition, message) {
  if (!condition) throw new Error(message);
}

/** Aborts every request to another origin, and records what the pages log as errors. */
async function guard(context) {
  await context.route('**/*', (route) => {
    const url = route.request().url();
    if (new URL(url).origin === ORIGIN) return route.continue();
    blocked.push(url);
    return route.abort('blockedbyclient');
  });
  context.on('page', (page) => watch(page));
}

function watch(page) {
  page.on('pageerror', (error) => pageErrors.push(`${page.url()}: ${error.message}`));
  page.on('console', (message) => {
    if (message.type() === 'error') consoleErrors.push({ text: message.text(), url: message.location().url || '', page: page.url() });
  });
}

/** Loads a console route afresh (a full page load, not a same-document hash change). */
async function open(page, hash) {
  await page.goto('about:blank');
  await page.goto(`${BASE}/${hash}`);
}

/** The ids the jobs list shows, once it shows the answer for the current hash. */
async function listedJobs(page) {
  await page.waitForFunction(() => {
    const list = document.querySelector('#jobs-list');
    return list && list.dataset.for === location.hash;
  });
  return page.$$eval('#jobs-table tbody tr', (rows) => rows.map((r) => r.dataset.id));
}

async function shot(page, name) {
  await page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });
}

async function step(name, body) {
  const started = Date.now();
  try {
    await body();
    passed += 1;
    console.log(`ok - ${name} (${Date.now() - started} ms)`);
  } catch (error) {
    console.log(`not ok - ${name}: ${error.stack || error}`);
    const pages = state.browser ? state.browser.contexts().flatMap((c) => c.pages()) : [];
    for (const [i, page] of pages.entries()) {
      await page.screenshot({ path: join(SHOTS, `failure-${i}.png`), fullPage: true }).catch(() => {});
    }
    await finish(1);
  }
}

async function finish(code) {
  if (state.browser) await state.browser.close().catch(() => {});
  console.log(`console browser test: ${passed} steps passed${code ? ', stopped at a failure' : ''}; screenshots in ${SHOTS}`);
  process.exit(code);
}

/** The job resource as the API gives it to the page's session. */
async function apiJob(page, id) {
  return page.evaluate(async (jobId) => {
    const response = await fetch(`/v1/jobs/${jobId}`, { credentials: 'same-origin' });
    return response.json();
  }, id);
}

async function waitForJobEnd(page) {
  await page.waitForFunction(
    () => /\b(succeeded|failed|cancelled)\b/.test(document.querySelector('#job-status')?.textContent || ''),
    null,
    { timeout: JOB_TIMEOUT },
  );
  const id = decodeURIComponent(new URL(page.url()).hash.split('/')[2]);
  return apiJob(page, id);
}

async function submitUrl(page, url) {
  await open(page, '#/');
  await page.fill('#submit-url', url);
  await page.click('#submit-form button[type=submit]');
  await page.waitForURL(/#\/jobs\/[0-9a-f-]{36}$/);
  return waitForJobEnd(page);
}

/**
 * Compares every drawn box with the job's JSON: the rect's on-screen position must be the
 * detection's box scaled by displayed size / upright size, offset by the image's position.
 */
async function checkBoxes(page, job) {
  const image = job.result.image;
  const detections = job.result.objects.detections;
  await page.waitForFunction(() => {
    const img = document.querySelector('#preview-image');
    return img && img.complete && img.naturalWidth > 0;
  }, null, { timeout: 20_000 });
  const drawn = await page.evaluate(() => {
    const img = document.querySelector('#preview-image').getBoundingClientRect();
    const natural = document.querySelector('#preview-image');
    const rects = [...document.querySelectorAll('#detections-figure svg.boxes rect')].map((r) => {
      const b = r.getBoundingClientRect();
      return { index: Number(r.dataset.index), left: b.left, top: b.top, width: b.width, height: b.height };
    });
    const labels = [...document.querySelectorAll('#detections-figure svg.boxes text')].map((t) => t.textContent);
    const rows = [...document.querySelectorAll('#detections-table tbody tr')].map((tr) => tr.querySelector('td.label').textContent);
    return {
      img: { left: img.left, top: img.top, width: img.width, height: img.height },
      natural: { width: natural.naturalWidth, height: natural.naturalHeight },
      rects, labels, rows,
    };
  });
  const width = image.oriented_width || image.width;
  const height = image.oriented_height || image.height;
  // The preview is the upright image: its shape is the oriented size's.
  const ratio = drawn.natural.width / drawn.natural.height;
  assert(Math.abs(ratio - width / height) < 0.02, `the preview is ${drawn.natural.width}×${drawn.natural.height}, the upright image ${width}×${height}`);
  assert(drawn.rects.length === detections.length, `${drawn.rects.length} boxes drawn for ${detections.length} detections`);
  assert(drawn.rows.length === detections.length, `${drawn.rows.length} table rows for ${detections.length} detections`);
  const sx = drawn.img.width / width;
  const sy = drawn.img.height / height;
  for (const rect of drawn.rects) {
    const box = detections[rect.index].box;
    const want = {
      left: drawn.img.left + box.x_min * sx,
      top: drawn.img.top + box.y_min * sy,
      width: (box.x_max - box.x_min) * sx,
      height: (box.y_max - box.y_min) * sy,
    };
    for (const key of ['left', 'top', 'width', 'height']) {
      assert(Math.abs(rect[key] - want[key]) <= 1.0,
        `box ${rect.index} (${detections[rect.index].label}) ${key}: drawn ${rect[key].toFixed(2)}, the JSON scaled says ${want[key].toFixed(2)}`);
    }
  }
  detections.forEach((d, i) => {
    assert(drawn.rows[i] === d.label, `table row ${i}: ${drawn.rows[i]} vs ${d.label}`);
    assert(drawn.labels[i] === `${d.label} ${d.score.toFixed(2)}`, `label ${i}: ${drawn.labels[i]}`);
  });
  return drawn;
}

async function cell(page, key) {
  const locator = page.locator(`tr[data-key="${key}"] td`);
  return (await locator.count()) ? (await locator.first().textContent()).trim() : null;
}

async function noHorizontalOverflow(page, what) {
  const sizes = await page.evaluate(() => ({
    scroll: document.documentElement.scrollWidth,
    inner: window.innerWidth,
    body: document.body.scrollWidth,
  }));
  assert(sizes.scroll <= sizes.inner && sizes.body <= sizes.inner,
    `${what} overflows at ${sizes.inner} px: the document is ${sizes.scroll} px wide`);
}

// ---------------------------------------------------------------------------------------------

state.browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-dev-shm-usage', '--disable-gpu'],
});
const browser = state.browser;
const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
state.context = context;
await guard(context);
const page = await context.newPage();
const email = `console-${Date.now()}@example.com`;
let password = 'correct horse battery';

await step('the log-in page renders with labelled fields and no session', async () => {
  await page.goto(`${BASE}/`);
  await page.waitForSelector('#login');
  assert(await page.locator('label[for="login-email"]').count() === 1, 'the email field has no label');
  assert(await page.locator('label[for="login-password"]').count() === 1, 'the password field has no label');
  assert(await page.locator('#nav').isHidden(), 'the navigation shows without a session');
  await shot(page, 'login-desktop');
});

await step('signing up logs the new user in', async () => {
  await page.click('a[href^="#/signup"]');
  await page.fill('#signup-email', email);
  await page.fill('#signup-password', password);
  await page.fill('#signup-account', 'Browser test');
  await page.click('#signup button[type=submit]');
  await page.waitForSelector('#submit-form');
  assert(await page.locator('#nav').isVisible(), 'no navigation after signing up');
  const who = await page.textContent('#who');
  assert(who.includes(email), `the footer says ${who}`);
  state.session = await page.evaluate(async () => (await fetch('/v1/session')).json());
  assert(state.session.user.email === email, 'GET /v1/session names another user');
});

await step('the keys page mints a key, shows it once, and revokes another', async () => {
  await open(page, '#/keys');
  await page.fill('#key-name', 'browser test');
  await page.click('#key-form button[type=submit]');
  const secret = await page.locator('#new-key-secret').inputValue({ timeout: 10_000 });
  assert(/^imk_/.test(secret), `the secret shown is ${secret}`);
  const prefix = secret.slice(0, 12);
  await page.waitForSelector(`#keys-table tr[data-prefix="${prefix}"]`);
  // The key works outside the browser, for this account.
  const account = await fetch(`${BASE}/v1/account`, { headers: { authorization: `Bearer ${secret}` } });
  assert(account.status === 200, `the minted key gets ${account.status}`);
  assert((await account.json()).id === state.session.user.account_id, "the minted key is not in the user's account");
  state.key = secret;
  await shot(page, 'keys-desktop');

  await page.fill('#key-name', 'to revoke');
  await page.click('#key-form button[type=submit]');
  const doomed = await page.locator('#new-key-secret').inputValue();
  assert(doomed !== secret, 'the second key has the first one\'s secret');
  const doomedPrefix = doomed.slice(0, 12);
  const row = page.locator(`#keys-table tr[data-prefix="${doomedPrefix}"]`);
  await row.locator('button', { hasText: 'Revoke' }).click();
  await row.locator('button', { hasText: 'Yes, revoke' }).click();
  await page.waitForSelector(`#keys-table tr.revoked[data-prefix="${doomedPrefix}"]`);
  const refused = await fetch(`${BASE}/v1/account`, { headers: { authorization: `Bearer ${doomed}` } });
  assert(refused.status === 401, `a revoked key gets ${refused.status}`);
});

await step('a submitted URL shows its boxes over the upright image where the JSON puts them', async () => {
  const job = await submitUrl(page, IMAGE_URL);
  assert(job.status === 'succeeded', `the job ${job.status}: ${JSON.stringify(job.error)}`);
  assert(job.result.objects.detections.length > 0, 'the fixture has no detections');
  state.imageJob = job;
  await checkBoxes(page, job);
  await shot(page, 'job-desktop');
  // The first screen of it, as the README shows it (docs/images/console.png).
  await page.screenshot({ path: join(SHOTS, 'job-desktop-first-screen.png') });
});

await step('the metadata tables show the EXIF, GPS, colours and hashes of the JSON', async () => {
  const job = await submitUrl(page, EXIF_URL);
  assert(job.status === 'succeeded', `the job ${job.status}: ${JSON.stringify(job.error)}`);
  const image = job.result.image;
  const exif = image.exif;
  assert(exif && exif.make, 'the EXIF fixture has no EXIF');
  for (const key of ['make', 'model', 'lens', 'datetime_original']) {
    const shown = await cell(page, `exif.${key}`);
    assert(shown === exif[key], `exif.${key}: shown ${shown}, JSON ${exif[key]}`);
  }
  for (const key of ['iso', 'f_number', 'focal_length_mm', 'exposure_time_s', 'orientation']) {
    const shown = await cell(page, `exif.${key}`);
    assert(shown && shown.includes(String(exif[key])), `exif.${key}: shown ${shown}, JSON ${exif[key]}`);
  }
  const gps = exif.gps;
  const coordinates = await cell(page, 'gps.coordinates');
  const lat = gps.latitude.toFixed(6);
  const lon = gps.longitude.toFixed(6);
  assert(coordinates.includes(`${lat}, ${lon}`), `GPS shown ${coordinates}, JSON ${lat}, ${lon}`);
  const map = await page.getAttribute('#map-link', 'href');
  assert(map.startsWith('https://www.openstreetmap.org/') && map.includes(`mlat=${lat}`) && map.includes(`mlon=${lon}`), `map link ${map}`);
  assert((await cell(page, 'gps.altitude_m')).includes(String(gps.altitude_m)), 'altitude');
  assert((await cell(page, 'sha256')) === image.sha256, 'sha256');
  assert((await cell(page, 'phash')) === image.phash, 'phash');
  assert((await cell(page, 'format')).startsWith(image.format), 'format');
  const swatches = await page.evaluate(() => [...document.querySelectorAll('#colours li')].map((li) => ({
    hex: li.dataset.hex, colour: getComputedStyle(li.querySelector('.swatch')).backgroundColor,
  })));
  assert(swatches.length === image.dominant_colors.length, `${swatches.length} swatches for ${image.dominant_colors.length} colours`);
  swatches.forEach((s, i) => {
    const hex = image.dominant_colors[i].hex;
    const rgb = `rgb(${parseInt(hex.slice(1, 3), 16)}, ${parseInt(hex.slice(3, 5), 16)}, ${parseInt(hex.slice(5, 7), 16)})`;
    assert(s.colour === rgb, `swatch ${i} is ${s.colour}, the JSON says ${hex}`);
  });
  // This fixture is stored sideways (EXIF orientation 6): the boxes are in the upright image.
  assert(image.oriented_width !== image.width, 'the EXIF fixture is not rotated');
  await checkBoxes(page, job);
  state.exifJob = job;
  await shot(page, 'metadata-desktop');
});

await step('an uploaded file is analysed and its boxes drawn', async () => {
  await open(page, '#/');
  await page.setInputFiles('#submit-file', UPLOAD_FILE);
  await page.click('#submit-form button[type=submit]');
  await page.waitForURL(/#\/jobs\/[0-9a-f-]{36}$/);
  const job = await waitForJobEnd(page);
  assert(job.status === 'succeeded', `the upload ${job.status}: ${JSON.stringify(job.error)}`);
  assert(job.source.kind === 'upload', `the job's source is ${JSON.stringify(job.source)}`);
  assert((await cell(page, 'source')).startsWith('uploaded image'), 'the job does not say it was uploaded');
  await checkBoxes(page, job);
  state.uploadJob = job;
});

await step('a failed job shows its error code', async () => {
  const job = await submitUrl(page, MISSING_URL);
  assert(job.status === 'failed', `the job ${job.status}`);
  const code = (await page.textContent('#job-error .code')).trim();
  assert(code === job.error.code, `shown ${code}, the JSON says ${job.error.code}`);
  assert(code === 'http_status', `a 404 image is ${code}`);
  state.failedJob = job;
});

await step('the jobs list filters by status and label, and pages', async () => {
  await open(page, '#/jobs');
  const ids = await listedJobs(page);
  for (const job of [state.imageJob, state.exifJob, state.uploadJob, state.failedJob]) {
    assert(ids.includes(job.id), `job ${job.id} is not listed`);
  }
  await shot(page, 'jobs-desktop');
  await page.selectOption('#filter-status', 'failed');
  await page.click('#jobs-filter button[type=submit]');
  await page.waitForURL(/status=failed/);
  const failed = await listedJobs(page);
  assert(failed.length === 1 && failed[0] === state.failedJob.id, `status=failed lists ${failed}`);
  const label = state.uploadJob.result.objects.detections[0].label;
  await page.fill('#filter-label', label);
  await page.selectOption('#filter-status', '');
  await page.click('#jobs-filter button[type=submit]');
  await page.waitForURL(/label=/);
  const labelled = await listedJobs(page);
  assert(labelled.includes(state.uploadJob.id) && !labelled.includes(state.failedJob.id), `label=${label} lists ${labelled}`);
  await open(page, '#/jobs?limit=2');
  const first = await listedJobs(page);
  await page.click('#next-page');
  await page.waitForURL(/cursor=/);
  const second = await listedJobs(page);
  assert(first.length === 2 && second.length >= 1 && second.every((id) => !first.includes(id)), `pages ${first} then ${second}`);
});

await step("another account's job id shows not found", async () => {
  await open(page, `#/jobs/${FOREIGN_JOB}`);
  await page.waitForFunction(() => document.querySelector('#view-title')?.textContent === 'Job not found');
  const code = (await page.textContent('#job-body .code')).trim();
  assert(code === 'job_not_found', `the error shown is ${code}`);
  assert((await page.textContent('#job-status')).includes('Not found'), 'the status line does not say not found');
});

await step('a batch shows its progress and links its NDJSON results', async () => {
  await open(page, '#/batches');
  await page.fill('#batch-urls', `${IMAGE_URL}\n${MISSING_URL}`);
  await page.click('#batch-form button[type=submit]');
  await page.waitForURL(/#\/batches\/[0-9a-f-]{36}$/);
  await page.waitForFunction(() => {
    const bar = document.querySelector('#batch-progress');
    return bar && Number(bar.value) === 2 && Number(bar.max) === 2;
  }, null, { timeout: JOB_TIMEOUT });
  const id = decodeURIComponent(new URL(page.url()).hash.split('/')[2]);
  const href = await page.getAttribute('#batch-results', 'href');
  assert(href === `/v1/batches/${id}/results`, `the results link is ${href}`);
  const lines = await page.evaluate(async (path) => (await (await fetch(path)).text()).trim().split('\n').map((l) => JSON.parse(l)), href);
  assert(lines.length === 2, `${lines.length} result lines`);
  assert((await cell(page, 'counts.succeeded')) === '1' && (await cell(page, 'counts.failed')) === '1', 'the counts are not 1 succeeded, 1 failed');
  await open(page, '#/batches');
  await page.waitForSelector(`#batches-list li[data-id="${id}"] progress`);
  await shot(page, 'batches-desktop');
});

await step('a session request without the CSRF token is refused 403 csrf_failed', async () => {
  const answer = await page.evaluate(async (url) => {
    const response = await fetch('/v1/jobs', {
      method: 'POST', credentials: 'same-origin', headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ url, tasks: ['metadata'] }),
    });
    return { status: response.status, body: await response.json() };
  }, IMAGE_URL);
  assert(answer.status === 403 && answer.body.error.code === 'csrf_failed', `without the token: ${JSON.stringify(answer)}`);
  const withToken = await page.evaluate(async (url) => {
    const session = await (await fetch('/v1/session')).json();
    const response = await fetch('/v1/jobs', {
      method: 'POST', credentials: 'same-origin',
      headers: { 'content-type': 'application/json', 'x-csrf-token': session.csrf_token },
      body: JSON.stringify({ url, tasks: ['metadata'] }),
    });
    return response.status;
  }, IMAGE_URL);
  assert(withToken === 202 || withToken === 201, `the same request with the token gets ${withToken}`);
});

await step('at 375 px wide nothing overflows and the boxes still match', async () => {
  const mobile = await browser.newContext({
    viewport: { width: 375, height: 812 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true,
    storageState: await context.storageState(),
  });
  await guard(mobile);
  const small = await mobile.newPage();
  for (const [hash, ready, name] of [
    ['#/', '#submit-form', 'submit-mobile'],
    [`#/jobs/${state.imageJob.id}`, '#detections-table', 'job-mobile'],
    [`#/jobs/${state.exifJob.id}`, '#exif', 'metadata-mobile'],
    ['#/jobs', '#jobs-table', 'jobs-mobile'],
    ['#/batches', '#batches-list ul', 'batches-mobile'],
    ['#/keys', '#keys-table', 'keys-mobile'],
    ['#/account', '#password-form', 'account-mobile'],
  ]) {
    await open(small, hash);
    await small.waitForSelector(ready);
    if (name === 'job-mobile') await checkBoxes(small, state.imageJob);
    await noHorizontalOverflow(small, hash);
    await shot(small, name);
  }
  await mobile.close();
  const anonymous = await browser.newContext({ viewport: { width: 375, height: 812 }, isMobile: true });
  await guard(anonymous);
  const login = await anonymous.newPage();
  await login.goto(`${BASE}/`);
  await login.waitForSelector('#login');
  await noHorizontalOverflow(login, 'the log-in page');
  await shot(login, 'login-mobile');
  await anonymous.close();
});

await step('the keyboard reaches every navigation control, with a visible focus', async () => {
  // A fresh load: the focus starts at the top of the document.
  await open(page, '#/jobs');
  await page.waitForSelector('#jobs-table');
  const reached = [];
  for (let i = 0; i < 12; i += 1) {
    await page.keyboard.press('Tab');
    reached.push(await page.evaluate(() => {
      const el = document.activeElement;
      const style = getComputedStyle(el);
      return { text: (el.textContent || '').trim(), outline: style.outlineStyle, width: style.outlineWidth };
    }));
  }
  const texts = reached.map((r) => r.text);
  for (const want of ['Skip to content', 'Submit', 'Jobs', 'Batches', 'Keys', 'Account', 'Log out']) {
    assert(texts.includes(want), `Tab never reaches "${want}": ${texts.join(' | ')}`);
  }
  const nav = reached.find((r) => r.text === 'Jobs');
  assert(nav.outline !== 'none' && nav.width !== '0px', `the focused link has outline ${nav.outline} ${nav.width}`);
});

await step('changing the password keeps this session', async () => {
  await open(page, '#/account');
  await page.waitForSelector('#password-form');
  await page.waitForSelector('tr[data-key="name"]');
  assert((await cell(page, 'name')) === 'Browser test', 'the account name is not the one signed up with');
  const fresh = 'another correct horse';
  await page.fill('#pw-current', password);
  await page.fill('#pw-new', fresh);
  await page.click('#password-form button[type=submit]');
  await page.waitForSelector('#password-form .ok');
  password = fresh;
  const still = await page.evaluate(async () => (await fetch('/v1/session')).status);
  assert(still === 200, `after changing the password the session gets ${still}`);
  await shot(page, 'account-desktop');
});

await step('logging out ends the session: the console and the API no longer read jobs', async () => {
  const cookies = await context.cookies();
  assert(cookies.some((c) => c.name === 'imgmeta_session' && c.httpOnly), 'no HttpOnly session cookie');
  await open(page, '#/jobs');
  await page.waitForSelector('#jobs-table');
  await page.click('#logout');
  await page.waitForSelector('#login');
  await open(page, '#/jobs');
  await page.waitForSelector('#login');
  assert(await page.locator('#jobs-table').count() === 0, 'the jobs list still shows');
  const status = await page.evaluate(async () => (await fetch('/v1/jobs')).status);
  assert(status === 401, `GET /v1/jobs after logging out: ${status}`);
  // The old cookie, sent again, is refused too: the session ended on the server.
  await context.addCookies(cookies);
  const replayed = await page.evaluate(async () => {
    const response = await fetch('/v1/jobs');
    return { status: response.status, body: await response.json() };
  });
  assert(replayed.status === 401, `the old session cookie still reads jobs: ${JSON.stringify(replayed)}`);
  await context.clearCookies();
});

await step('logging in: a wrong password shows its code, the right one gets in', async () => {
  await open(page, '#/login');
  await page.fill('#login-email', email);
  await page.fill('#login-password', 'correct horse battery');
  await page.click('#login button[type=submit]');
  await page.waitForSelector('#login .error');
  const code = (await page.textContent('#login .error .code')).trim();
  assert(code === 'invalid_credentials', `the old password shows ${code}`);
  await page.fill('#login-password', password);
  await page.click('#login button[type=submit]');
  await page.waitForSelector('#submit-form');
  const status = await page.evaluate(async () => (await fetch('/v1/jobs')).status);
  assert(status === 200, `after logging in again GET /v1/jobs is ${status}`);
});

await step('/docs loads with no console error and nothing from other origins', async () => {
  const before = consoleErrors.length;
  const docs = await context.newPage();
  const response = await docs.goto(`${BASE}/docs`);
  assert(response.status() === 200, `/docs answers ${response.status()}`);
  // The page has rendered the contract's operations (tests/browser/docs.spec.mjs checks them).
  await docs.waitForSelector('section.operation');
  await docs.waitForLoadState('networkidle');
  const errors = consoleErrors.slice(before);
  assert(errors.length === 0, `/docs logged ${JSON.stringify(errors)}`);
  await shot(docs, 'docs-desktop');
  await docs.close();
});

await step('nothing was loaded from another origin, no script failed, no CSP violation', async () => {
  assert(blocked.length === 0, `the browser asked other origins: ${blocked.join(', ')}`);
  assert(pageErrors.length === 0, `uncaught errors: ${pageErrors.join('; ')}`);
  const csp = consoleErrors.filter((e) => /Content Security Policy|Refused to/i.test(e.text));
  assert(csp.length === 0, `CSP violations: ${JSON.stringify(csp)}`);
  // The only failed loads allowed are the API's deliberate refusals (401 before logging in,
  // the foreign job's 404, the CSRF 403), never an asset of the console.
  const unexpected = consoleErrors.filter((e) => !(e.text.startsWith('Failed to load resource') && new URL(e.url || BASE).pathname.startsWith('/v1/')));
  assert(unexpected.length === 0, `console errors: ${JSON.stringify(unexpected)}`);
});

await finish(0);
