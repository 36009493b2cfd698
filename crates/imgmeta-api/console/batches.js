// Batches: the account's batches with progress bars, one batch's counts (refreshed while it
// runs) with links to its NDJSON results, and a form that submits a list of URLs as a batch.

import { request } from './api.js';
import { errorBox, factTable, field, formatTime, h, heading, statusBadge } from './dom.js';

const COUNT_NAMES = ['queued', 'running', 'succeeded', 'failed', 'cancelled', 'rejected'];

function ended(counts) {
  return (counts.succeeded || 0) + (counts.failed || 0) + (counts.cancelled || 0) + (counts.rejected || 0);
}

/** A labelled progress bar: items ended out of all items. */
function progress(batch, id) {
  const counts = batch.counts || {};
  const total = counts.total || 0;
  const done = ended(counts);
  const percent = total ? Math.floor((done / total) * 100) : 100;
  const labelId = `${id}-label`;
  return h('div', { class: 'progress' },
    h('progress', { id, max: String(total || 1), value: String(total ? done : 1), 'aria-labelledby': labelId }),
    h('span', { id: labelId, class: 'muted' }, `${done} of ${total} ended (${percent} %)`));
}

export async function renderBatches(main) {
  const list = h('div', { id: 'batches-list', 'aria-busy': 'true' }, h('p', { class: 'muted' }, 'Loading…'));
  main.replaceChildren(heading('Batches'), list, newBatchForm());
  let page;
  try {
    page = await request('GET', '/v1/batches?limit=50');
  } catch (e) {
    list.replaceChildren(errorBox(e));
    list.removeAttribute('aria-busy');
    return;
  }
  list.removeAttribute('aria-busy');
  if (page.batches.length === 0) {
    list.replaceChildren(h('p', null, 'No batches yet. Submit one below, or with ', h('code', null, 'imgmeta submit'), '.'));
    return;
  }
  list.replaceChildren(h('ul', { class: 'cards' }, page.batches.map((b) => h('li', { class: 'card', 'data-id': b.id },
    h('p', null, h('a', { href: `#/batches/${encodeURIComponent(b.id)}` }, h('code', null, b.id.slice(0, 8))), ' ', statusBadge(b.status),
      h('span', { class: 'muted' }, ` created ${formatTime(b.created_at)}`)),
    progress(b, `progress-${b.id}`),
    h('p', { class: 'links' }, h('a', { href: resultsPath(b) }, 'Results (NDJSON)'))))));
}

function resultsPath(batch, status) {
  const base = `/v1/batches/${encodeURIComponent(batch.id)}/results`;
  return status ? `${base}?status=${encodeURIComponent(status)}` : base;
}

export async function renderBatch(main, route, signal) {
  const id = route.id;
  const body = h('div', { id: 'batch-body', 'aria-live': 'polite' }, h('p', { class: 'muted' }, 'Loading…'));
  main.replaceChildren(heading(`Batch ${id.slice(0, 8)}…`), body);
  let delay = 1000;
  while (!signal.aborted) {
    let batch;
    try {
      batch = await request('GET', `/v1/batches/${encodeURIComponent(id)}`);
    } catch (e) {
      if (signal.aborted) return;
      if (e.status === 404 || e.status === 400) main.querySelector('#view-title').textContent = 'Batch not found';
      body.replaceChildren(errorBox(e));
      return;
    }
    if (signal.aborted) return;
    body.replaceChildren(batchDetails(batch));
    if (batch.status !== 'running') return;
    await new Promise((resolve) => {
      const timer = setTimeout(resolve, delay);
      signal.addEventListener('abort', () => {
        clearTimeout(timer);
        resolve();
      }, { once: true });
    });
    delay = Math.min(delay * 1.5, 5000);
  }
}

function batchDetails(batch) {
  const counts = batch.counts || {};
  const cancel = h('button', { type: 'button', class: 'danger', id: 'cancel-batch' }, 'Cancel the items not started');
  const outcome = h('div', { role: 'status' });
  cancel.addEventListener('click', async () => {
    cancel.disabled = true;
    try {
      await request('DELETE', `/v1/batches/${encodeURIComponent(batch.id)}`);
      outcome.replaceChildren(h('p', { class: 'ok' }, 'Cancelled.'));
    } catch (e) {
      outcome.replaceChildren(errorBox(e));
      cancel.disabled = false;
    }
  });
  return h('div', null,
    h('p', null, 'Status: ', statusBadge(batch.status)),
    progress(batch, 'batch-progress'),
    factTable('Items', COUNT_NAMES.map((name) => [name, counts[name] ?? 0, `counts.${name}`]).concat([['total', counts.total ?? 0, 'counts.total']]), { id: 'batch-counts' }),
    factTable('Batch', [
      ['Tasks', (batch.tasks || []).join(', '), 'tasks'],
      ['Created', formatTime(batch.created_at), 'created_at'],
      ['Completed', formatTime(batch.completed_at), 'completed_at'],
      ['Rate', typeof batch.rate_per_s === 'number' ? `${batch.rate_per_s} items/s` : null, 'rate_per_s'],
      ['Time left', typeof batch.eta_s === 'number' ? `about ${batch.eta_s} s` : null, 'eta_s'],
    ]),
    h('h2', null, 'Results'),
    h('ul', { class: 'links' },
      h('li', null, h('a', { href: resultsPath(batch), id: 'batch-results' }, 'All results (NDJSON, in line order)')),
      h('li', null, h('a', { href: resultsPath(batch, 'failed') }, 'Failed items (NDJSON)')),
      h('li', null, h('a', { href: resultsPath(batch, 'rejected') }, 'Rejected lines (NDJSON)')),
      h('li', null, h('a', { href: `#/jobs?batch=${encodeURIComponent(batch.id)}` }, 'Its jobs in the jobs list'))),
    batch.status === 'running' ? h('div', { class: 'actions' }, cancel) : null,
    outcome);
}

function newBatchForm() {
  const urls = h('textarea', { id: 'batch-urls', rows: '4', spellcheck: 'false', placeholder: 'https://example.com/a.jpg\nhttps://example.com/b.png' });
  const errors = h('div', { class: 'form-errors' });
  const button = h('button', { type: 'submit' }, 'Submit batch');
  const form = h('form', { id: 'batch-form', class: 'card' },
    h('h2', null, 'New batch'),
    field('Image URLs, one per line', urls, 'Each line becomes a job (metadata and objects). Up to 10,000.'),
    errors,
    h('div', { class: 'actions' }, button));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    errors.replaceChildren();
    const items = urls.value.split('\n').map((u) => u.trim()).filter(Boolean).map((url) => ({ url }));
    if (items.length === 0) {
      errors.replaceChildren(errorBox({ code: 'missing_urls', message: 'give at least one URL' }));
      return;
    }
    button.disabled = true;
    try {
      const batch = await request('POST', '/v1/batches', { json: { items, tasks: ['metadata', 'objects'] } });
      location.hash = `#/batches/${encodeURIComponent(batch.id)}`;
    } catch (e) {
      errors.replaceChildren(errorBox(e));
    } finally {
      button.disabled = false;
    }
  });
  return form;
}
