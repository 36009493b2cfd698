// The console's shell: hash routing (`#/jobs/<id>`, …) over one page, the session gate and
// the navigation. Each view renders into <main> and stops its timers when the route changes.

import { currentUser, loadSession, logOut, setUnauthorizedHandler } from './api.js';
import { errorBox, h } from './dom.js';
import { renderAccount, renderLogin, renderSignup } from './auth.js';
import { renderSubmit } from './submit.js';
import { renderJob } from './job.js';
import { renderJobs } from './jobs.js';
import { renderBatch, renderBatches } from './batches.js';
import { renderKeys } from './keys.js';

const JOB_ID = /^[0-9a-fA-F-]{1,64}$/;

/** The route of a hash: its view, path parameters and query. */
function parseRoute(hash) {
  const raw = hash.replace(/^#/, '') || '/';
  const [path, query = ''] = raw.split('?');
  const parts = path.split('/').filter(Boolean).map(decodeURIComponent);
  const params = new URLSearchParams(query);
  if (parts.length === 0) return { view: 'submit', nav: 'submit', params };
  const [first, second] = parts;
  if (first === 'login' || first === 'signup') return { view: first, params, public: true };
  if (first === 'jobs' && second !== undefined && JOB_ID.test(second)) {
    return { view: 'job', nav: 'jobs', id: second, params };
  }
  if (first === 'jobs') return { view: 'jobs', nav: 'jobs', params };
  if (first === 'batches' && second !== undefined) return { view: 'batch', nav: 'batches', id: second, params };
  if (first === 'batches') return { view: 'batches', nav: 'batches', params };
  if (first === 'keys') return { view: 'keys', nav: 'keys', params };
  if (first === 'account') return { view: 'account', nav: 'account', params };
  return { view: 'missing', params };
}

const VIEWS = {
  submit: renderSubmit,
  login: renderLogin,
  signup: renderSignup,
  job: renderJob,
  jobs: renderJobs,
  batch: renderBatch,
  batches: renderBatches,
  keys: renderKeys,
  account: renderAccount,
  missing: async (main) => {
    main.replaceChildren(h('h1', { tabindex: '-1', id: 'view-title' }, 'Not found'),
      h('p', null, 'No such page in the console. ', h('a', { href: '#/' }, 'Submit an image')));
  },
};

let current = null;
let sessionChecked = false;
let shown = null;

function showChrome() {
  const user = currentUser();
  document.getElementById('nav').hidden = !user;
  document.getElementById('who').textContent = user ? `Signed in as ${user.email}` : '';
}

function markNav(route) {
  for (const link of document.querySelectorAll('[data-nav]')) {
    if (link.dataset.nav === route.nav) link.setAttribute('aria-current', 'page');
    else link.removeAttribute('aria-current');
  }
}

async function route(focus = false) {
  if (current) current.abort();
  const controller = new AbortController();
  current = controller;
  const main = document.getElementById('main');
  const target = parseRoute(location.hash);
  try {
    if (!sessionChecked) {
      await loadSession();
      sessionChecked = true;
    }
    showChrome();
    markNav(target);
    let view = target;
    if (!target.public && !currentUser()) {
      view = { view: 'login', params: new URLSearchParams({ next: location.hash || '#/' }), public: true };
    } else if (target.public && currentUser()) {
      location.replace('#/');
      return;
    }
    await VIEWS[view.view](main, view, controller.signal);
    // Focus the new view's heading so keyboard and screen-reader users land on it (not when
    // only the query changed, e.g. a list's filter, nor at the first load).
    const place = `${view.view}/${view.id || ''}`;
    if (focus && place !== shown && !controller.signal.aborted) {
      const title = document.getElementById('view-title');
      if (title) title.focus();
    }
    shown = place;
  } catch (e) {
    if (controller.signal.aborted) return;
    main.replaceChildren(h('h1', { tabindex: '-1', id: 'view-title' }, 'Something went wrong'), errorBox(e));
  }
}

/** Re-renders the current route (after logging in or out). */
export function refresh() {
  showChrome();
  route();
}

setUnauthorizedHandler(() => {
  // The session ended (logged out elsewhere, expired, password changed): back to the login form.
  showChrome();
  route();
});

document.getElementById('logout').addEventListener('click', async () => {
  try {
    await logOut();
  } catch {
    // Logged out locally either way; the cookie is HttpOnly and the server ends the session.
  }
  showChrome();
  if (location.hash === '#/login') route();
  else location.hash = '#/login';
});

window.addEventListener('hashchange', () => route(true));
route();
