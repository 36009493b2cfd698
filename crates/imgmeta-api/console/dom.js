// Building DOM without HTML strings: every text the service or a user gave goes in as a text
// node, so nothing untrusted is ever parsed as markup.

const SVG_NS = 'http://www.w3.org/2000/svg';

/**
 * `h('a', {href: '#/jobs', class: 'btn'}, 'Jobs')`. A tag `svg:rect` makes an SVG element.
 * `on*` attributes become event listeners (JavaScript listeners, not inline handlers, which
 * the Content-Security-Policy forbids). `null`, `undefined` and `false` attributes are left out.
 */
export function h(tag, attrs, ...children) {
  const svg = tag.startsWith('svg:');
  const el = svg ? document.createElementNS(SVG_NS, tag.slice(4)) : document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith('on') && typeof value === 'function') {
      el.addEventListener(name.slice(2), value);
    } else {
      el.setAttribute(name, value === true ? '' : String(value));
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else if (child instanceof Node) el.appendChild(child);
    else el.appendChild(document.createTextNode(String(child)));
  }
}

/** The envelope of an ApiError as a visible, announced message. */
export function errorBox(error) {
  const code = error && error.code ? error.code : 'error';
  const message = error && error.message ? error.message : String(error);
  return h('div', { class: 'error', role: 'alert' },
    h('strong', { class: 'code' }, code), ' ', h('span', { class: 'message' }, message));
}

/** A two-column table of `[label, value, key]` rows; rows whose value is null are left out. */
export function factTable(caption, rows, attrs = {}) {
  const body = rows
    .filter(([, value]) => value !== null && value !== undefined && value !== '')
    .map(([label, value, key]) =>
      h('tr', { 'data-key': key || null }, h('th', { scope: 'row' }, label), h('td', null, value)));
  if (body.length === 0) return null;
  return h('table', { class: 'facts', ...attrs }, h('caption', null, caption), h('tbody', null, body));
}

/**
 * A table with a header row, which narrow screens show as one card per row (each value under
 * its header's name). A row is an array of cells or `{attrs, cells}`; a cell is content (text,
 * a node, an array) or `{class, content}`.
 */
export function dataTable(caption, headers, rows, attrs = {}) {
  const body = rows.map((row) => {
    const { attrs: rowAttrs = null, cells } = Array.isArray(row) ? { cells: row } : row;
    return h('tr', rowAttrs, cells.map((cell, i) => {
      const plain = cell === null || typeof cell !== 'object' || cell instanceof Node || Array.isArray(cell);
      const { class: cls = null, content } = plain ? { content: cell } : cell;
      return h('td', { class: cls, 'data-label': headers[i] || null }, h('span', { class: 'v' }, content));
    }));
  });
  return h('div', { class: 'scroll', ...attrs },
    h('table', { class: 'data stack' },
      h('caption', null, caption),
      h('thead', null, h('tr', null, headers.map((text) => h('th', { scope: 'col' }, text)))),
      h('tbody', null, body)));
}

/** `el.replaceChildren(...)` leaving out null, undefined and false children. */
export function fill(el, ...children) {
  el.replaceChildren(...children.flat().filter((c) => c !== null && c !== undefined && c !== false));
  return el;
}

export function formatTime(iso) {
  if (!iso) return '';
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return String(iso);
  return date.toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'medium' });
}

export function formatBytes(bytes) {
  if (typeof bytes !== 'number') return '';
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KiB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
}

/** A status word as a badge whose class colours it. */
export function statusBadge(status) {
  return h('span', { class: `badge status-${String(status).replace(/[^a-z_]/g, '')}` }, status);
}

/** The visible heading of a view; focused after navigation so screen readers announce it. */
export function heading(text) {
  return h('h1', { tabindex: '-1', id: 'view-title' }, text);
}

/** A labelled form field: `<label for>` with its input (or select, textarea). */
export function field(label, control, hint) {
  const id = control.id;
  if (hint) control.setAttribute('aria-describedby', `${id}-hint`);
  return h('div', { class: 'field' },
    h('label', { for: id }, label),
    control,
    hint ? h('small', { class: 'hint', id: `${id}-hint` }, hint) : null);
}
