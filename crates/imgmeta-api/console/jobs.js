// The account's jobs, newest first: filters by status and detected label (and batch), paged
// with the list's cursor (20 a page, or `limit`). The filters live in the hash (`#/jobs?status=failed&label=dog`),
// so a filtered page can be bookmarked and the back button works.

import { request } from './api.js';
import { dataTable, errorBox, field, fill, formatBytes, formatTime, h, heading, statusBadge } from './dom.js';
import { COCO_CLASSES } from './coco.js';

const STATUSES = ['queued', 'running', 'succeeded', 'failed', 'cancelled'];
const PAGE = 20;

export async function renderJobs(main, route) {
  const params = route.params;
  const status = h('select', { id: 'filter-status', name: 'status' },
    h('option', { value: '' }, 'any'),
    STATUSES.map((s) => h('option', { value: s, selected: params.get('status') === s }, s)));
  const label = h('input', { id: 'filter-label', name: 'label', type: 'text', list: 'coco-labels', value: params.get('label') || '', autocomplete: 'off', spellcheck: 'false' });
  const labels = h('datalist', { id: 'coco-labels' }, COCO_CLASSES.map((c) => h('option', { value: c })));
  const form = h('form', { id: 'jobs-filter', class: 'filters', role: 'search' },
    field('Status', status),
    field('Detected label', label),
    labels,
    h('div', { class: 'actions' }, h('button', { type: 'submit' }, 'Filter'), h('a', { href: '#/jobs', class: 'btn' }, 'Clear')));
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const next = new URLSearchParams();
    if (status.value) next.set('status', status.value);
    if (label.value.trim()) next.set('label', label.value.trim());
    for (const kept of ['batch', 'limit']) {
      if (params.get(kept)) next.set(kept, params.get(kept));
    }
    const query = next.toString();
    location.hash = query ? `#/jobs?${query}` : '#/jobs';
  });

  const list = h('div', { id: 'jobs-list', 'aria-live': 'polite', 'aria-busy': 'true' }, h('p', { class: 'muted' }, 'Loading…'));
  const batch = params.get('batch');
  fill(main, heading('Jobs'),
    batch ? h('p', null, 'Only the items of batch ', h('a', { href: `#/batches/${encodeURIComponent(batch)}` }, h('code', null, batch.slice(0, 8))), '.') : null,
    form, list);

  const query = new URLSearchParams({ limit: String(PAGE) });
  for (const name of ['status', 'label', 'batch', 'cursor', 'limit']) {
    if (params.get(name)) query.set(name, params.get(name));
  }
  let page;
  try {
    page = await request('GET', `/v1/jobs?${query}`);
  } catch (e) {
    list.replaceChildren(errorBox(e));
    list.removeAttribute('aria-busy');
    return;
  }
  list.removeAttribute('aria-busy');
  if (page.jobs.length === 0) {
    list.replaceChildren(h('p', null, params.get('cursor') ? 'No more jobs.' : 'No jobs match. ', h('a', { href: '#/' }, 'Submit an image')));
    list.dataset.for = location.hash;
    return;
  }
  const rows = page.jobs.map((job) => ({
    attrs: { 'data-id': job.id },
    cells: [
      h('a', { href: `#/jobs/${encodeURIComponent(job.id)}` }, h('code', null, job.id.slice(0, 8))),
      [statusBadge(job.status), job.error ? h('small', { class: 'code' }, ` ${job.error.code}`) : null],
      { class: 'source', content: job.source && job.source.kind === 'upload' ? `upload, ${formatBytes(job.source.bytes)}` : (job.url || '') },
      (job.tasks || []).join(', '),
      formatTime(job.created_at),
    ],
  }));
  const table = dataTable('Your jobs, newest first', ['Job', 'Status', 'Image', 'Tasks', 'Created'], rows, { id: 'jobs-table' });
  const pager = h('nav', { class: 'pager', 'aria-label': 'Pages' });
  if (params.get('cursor')) {
    const first = new URLSearchParams(params);
    first.delete('cursor');
    pager.appendChild(h('a', { href: `#/jobs${first.toString() ? `?${first}` : ''}`, class: 'btn' }, 'First page'));
  }
  if (page.next_cursor) {
    const next = new URLSearchParams(params);
    next.set('cursor', page.next_cursor);
    pager.appendChild(h('a', { href: `#/jobs?${next}`, class: 'btn', id: 'next-page' }, 'Next page'));
  }
  list.replaceChildren(table, pager);
  // Which page this list shows, for tests and scripts waiting on a filter's answer.
  list.dataset.for = location.hash;
}
