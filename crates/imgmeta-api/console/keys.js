// The account's API keys: list, mint (the secret is shown once), revoke.

import { request } from './api.js';
import { dataTable, errorBox, field, formatTime, h, heading } from './dom.js';

const SCOPES = [
  ['jobs:write', 'submit, cancel and erase jobs'],
  ['jobs:read', 'read jobs and their results'],
  ['keys:manage', "manage the account's keys"],
];

export async function renderKeys(main) {
  const minted = h('div', { id: 'minted', 'aria-live': 'polite' });
  const list = h('div', { id: 'keys-list', 'aria-busy': 'true' }, h('p', { class: 'muted' }, 'Loading…'));
  main.replaceChildren(heading('API keys'),
    h('p', { class: 'muted' }, 'Keys let programs use the API as this account: ', h('code', null, 'Authorization: Bearer imk_…'), '.'),
    mintForm(minted, () => load(list)), minted, list);
  await load(list);
}

async function load(list) {
  let answer;
  try {
    answer = await request('GET', '/v1/account/keys');
  } catch (e) {
    list.replaceChildren(errorBox(e));
    list.removeAttribute('aria-busy');
    return;
  }
  list.removeAttribute('aria-busy');
  const keys = answer.keys || [];
  if (keys.length === 0) {
    list.replaceChildren(h('p', null, 'No keys yet.'));
    return;
  }
  const rows = keys.map((key) => ({
    attrs: { 'data-prefix': key.prefix, class: key.revoked_at ? 'revoked' : null },
    cells: [
      h('code', null, key.prefix),
      key.name,
      (key.scopes || []).join(' '),
      { class: 'num', content: `${key.used_today ?? 0} / ${key.daily_quota ?? ''}` },
      formatTime(key.created_at),
      { class: 'state', content: key.revoked_at ? `revoked ${formatTime(key.revoked_at)}` : 'active' },
      key.revoked_at ? null : revokeButton(key, () => load(list)),
    ],
  }));
  list.replaceChildren(dataTable("The account's keys", ['Prefix', 'Name', 'Scopes', 'Used today', 'Created', 'State', ''], rows, { id: 'keys-table' }));
}

function revokeButton(key, reload) {
  const cell = h('span', { class: 'revoke' });
  const ask = h('button', { type: 'button', class: 'danger', 'aria-label': `Revoke key ${key.prefix}` }, 'Revoke…');
  ask.addEventListener('click', () => {
    const sure = h('button', { type: 'button', class: 'danger', 'aria-label': `Confirm revoking ${key.prefix}` }, 'Yes, revoke');
    const keep = h('button', { type: 'button' }, 'Keep');
    sure.addEventListener('click', async () => {
      sure.disabled = true;
      try {
        await request('DELETE', `/v1/account/keys/${encodeURIComponent(key.prefix)}`);
        await reload();
      } catch (e) {
        cell.replaceChildren(errorBox(e), ask);
      }
    });
    keep.addEventListener('click', () => {
      cell.replaceChildren(ask);
      ask.focus();
    });
    cell.replaceChildren(sure, ' ', keep);
    keep.focus();
  });
  cell.appendChild(ask);
  return cell;
}

function mintForm(minted, reload) {
  const name = h('input', { id: 'key-name', name: 'name', type: 'text', required: true, maxlength: '100', autocomplete: 'off' });
  const boxes = SCOPES.map(([scope, meaning]) => {
    const id = `scope-${scope.replace(':', '-')}`;
    const box = h('input', { id, type: 'checkbox', value: scope, checked: scope !== 'keys:manage' });
    return { box, row: h('div', { class: 'check' }, box, h('label', { for: id }, h('code', null, scope), ` — ${meaning}`)) };
  });
  const errors = h('div', { class: 'form-errors' });
  const button = h('button', { type: 'submit', class: 'primary' }, 'Create key');
  const form = h('form', { id: 'key-form', class: 'card' },
    h('h2', null, 'New key'),
    field('Name', name, 'What the key is for, e.g. "nightly import".'),
    h('fieldset', null, h('legend', null, 'Scopes'), boxes.map((b) => b.row)),
    errors,
    h('div', { class: 'actions' }, button));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    errors.replaceChildren();
    minted.replaceChildren();
    button.disabled = true;
    try {
      const scopes = boxes.filter((b) => b.box.checked).map((b) => b.box.value);
      const key = await request('POST', '/v1/account/keys', { json: { name: name.value.trim(), scopes } });
      minted.replaceChildren(secretBox(key));
      form.reset();
      await reload();
    } catch (e) {
      errors.replaceChildren(errorBox(e));
    } finally {
      button.disabled = false;
    }
  });
  return form;
}

/** The new key's secret, shown this once, with a copy button. */
function secretBox(key) {
  const secret = h('input', { id: 'new-key-secret', type: 'text', readonly: true, value: key.key, spellcheck: 'false' });
  const copy = h('button', { type: 'button' }, 'Copy');
  const copied = h('span', { role: 'status', class: 'muted' });
  copy.addEventListener('click', async () => {
    secret.select();
    try {
      await navigator.clipboard.writeText(key.key);
      copied.textContent = ' Copied.';
    } catch {
      copied.textContent = ' Selected: press Ctrl+C to copy.';
    }
  });
  const box = h('div', { class: 'card secret', role: 'region', 'aria-label': 'New key' },
    h('p', null, h('strong', null, `Key ${key.prefix} created.`), ' Copy it now: it is not shown again.'),
    field('Secret', secret),
    h('div', { class: 'actions' }, copy, copied));
  setTimeout(() => secret.focus(), 0);
  return box;
}
