// One job: its status, polled with backoff until it ends, then its result or its error.

import { request } from './api.js';
import { errorBox, factTable, fill, formatBytes, formatTime, h, heading, statusBadge } from './dom.js';
import { resultSections, timingsOf } from './result.js';
import { refresh } from './app.js';

const TERMINAL = new Set(['succeeded', 'failed', 'cancelled']);

/** Waits `ms`, or less when the view is left (the signal aborts). */
function sleep(ms, signal) {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener('abort', () => {
      clearTimeout(timer);
      resolve();
    }, { once: true });
  });
}

export async function renderJob(main, route, signal) {
  const id = route.id;
  const status = h('p', { id: 'job-status', role: 'status', 'aria-live': 'polite' }, 'Loading…');
  const body = h('div', { id: 'job-body' });
  main.replaceChildren(heading(`Job ${id.slice(0, 8)}…`), status, body);
  poll(id, status, body, signal, main);
}

async function poll(id, status, body, signal, main) {
  let delay = 300;
  let shownStatus = null;
  while (!signal.aborted) {
    let job;
    try {
      job = await request('GET', `/v1/jobs/${encodeURIComponent(id)}`);
    } catch (e) {
      if (signal.aborted) return;
      if (e.status === 404 || e.status === 400) {
        main.querySelector('#view-title').textContent = 'Job not found';
        status.textContent = 'Not found: no job with this id in your account.';
        body.replaceChildren(errorBox(e), h('p', null, h('a', { href: '#/jobs' }, 'Your jobs')));
        return;
      }
      // A transient failure (the service restarting, a rate limit): say so and keep polling.
      status.textContent = `Could not read the job (${e.code}); retrying…`;
      body.replaceChildren(errorBox(e));
      await sleep(Math.max(delay, Number(e.retryAfter) * 1000 || 0), signal);
      delay = Math.min(delay * 2, 5000);
      continue;
    }
    if (signal.aborted) return;
    if (job.status !== shownStatus) {
      shownStatus = job.status;
      status.replaceChildren('Status: ', statusBadge(job.status), statusNote(job));
      fill(body, jobSections(job));
    }
    if (TERMINAL.has(job.status)) return;
    await sleep(delay, signal);
    delay = Math.min(Math.round(delay * 1.5), 3000);
  }
}

function statusNote(job) {
  if (job.status === 'queued' && job.last_error) return ` — retrying after ${job.last_error.code}`;
  if (job.status === 'queued' || job.status === 'running') return ' — this page updates by itself.';
  return '';
}

function jobSections(job) {
  const source = job.source || {};
  const sourceText = source.kind === 'upload'
    ? `uploaded image, ${formatBytes(source.bytes)}`
    : source.url || job.url || '';
  const cache = job.cache ? `${job.cache.status}${job.cache.key ? ` (by ${job.cache.key})` : ''}` : null;
  const sections = [];
  if (job.status === 'failed' && job.error) {
    sections.push(h('div', { id: 'job-error' }, h('h2', null, 'The job failed'), errorBox(job.error)));
  } else if (job.last_error && !TERMINAL.has(job.status)) {
    sections.push(h('div', { id: 'job-last-error' }, h('p', null, 'The last attempt failed; the job will be retried:'), errorBox(job.last_error)));
  }
  sections.push(...resultSections(job));
  sections.push(h('section', { id: 'job', 'aria-labelledby': 'job-title' },
    h('h2', { id: 'job-title' }, 'Job'),
    factTable('The job', [
      ['Id', h('code', null, job.id), 'id'],
      ['Image', sourceText, 'source'],
      ['Tasks', (job.tasks || []).join(', '), 'tasks'],
      ['Minimum score', job.min_score, 'min_score'],
      ['Created', formatTime(job.created_at), 'created_at'],
      ['Started', formatTime(job.started_at), 'started_at'],
      ['Finished', formatTime(job.finished_at), 'finished_at'],
      ['Attempts', job.attempts, 'attempts'],
      ['Cache', cache, 'cache'],
      ['Result erased', formatTime(job.purged_at), 'purged_at'],
    ], { id: 'job-facts' }),
    jobActions(job),
    timingsOf(job)));
  return sections;
}

/** Cancel a live job; erase a finished job's result (with a confirming second step). */
function jobActions(job) {
  const outcome = h('div', { role: 'status', 'aria-live': 'polite' });
  const path = `/v1/jobs/${encodeURIComponent(job.id)}`;
  const act = async (button, query) => {
    button.disabled = true;
    try {
      await request('DELETE', path + query);
      refresh();
    } catch (e) {
      outcome.replaceChildren(errorBox(e));
      button.disabled = false;
    }
  };
  const buttons = h('div', { class: 'actions' });
  if (!TERMINAL.has(job.status)) {
    const cancel = h('button', { type: 'button', id: 'cancel-job' }, 'Cancel job');
    cancel.addEventListener('click', () => act(cancel, ''));
    buttons.appendChild(cancel);
  } else if (job.result && !job.purged_at) {
    const purge = h('button', { type: 'button', id: 'purge-job', class: 'danger' }, 'Erase result…');
    purge.addEventListener('click', () => {
      const sure = h('button', { type: 'button', class: 'danger' }, 'Yes, erase it');
      const keep = h('button', { type: 'button' }, 'Keep it');
      sure.addEventListener('click', () => act(sure, '?purge=true'));
      keep.addEventListener('click', () => {
        buttons.replaceChildren(purge);
        purge.focus();
      });
      buttons.replaceChildren(h('span', null, 'Erase the result and any images for good? '), sure, keep);
      keep.focus();
    });
    buttons.appendChild(purge);
  }
  return h('div', null, buttons, outcome);
}
