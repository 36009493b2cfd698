// Submitting an image: a URL (JSON body) or a file chosen or dropped (multipart upload), with
// the optional tasks (annotate, dream) and the minimum score.

import { request } from './api.js';
import { errorBox, field, h, heading } from './dom.js';

/** The tasks every console job runs: the preview lets the console draw the boxes itself. */
const BASE_TASKS = ['metadata', 'objects', 'preview'];

export async function renderSubmit(main) {
  const url = h('input', { id: 'submit-url', name: 'url', type: 'url', inputmode: 'url', placeholder: 'https://example.com/photo.jpg', autocomplete: 'off' });
  const file = h('input', { id: 'submit-file', name: 'file', type: 'file', accept: 'image/*' });
  const fileName = h('span', { class: 'muted', id: 'submit-file-name' }, 'No file chosen.');
  const drop = h('div', { class: 'drop', id: 'drop-zone' },
    h('p', null, 'Drop an image here, or'),
    field('Choose a file', file),
    fileName);
  const annotate = h('input', { id: 'task-annotate', type: 'checkbox', value: 'annotate' });
  const dream = h('input', { id: 'task-dream', type: 'checkbox', value: 'dream' });
  const minScore = h('input', { id: 'submit-min-score', type: 'number', min: '0', max: '1', step: '0.05', value: '0.25' });
  const errors = h('div', { class: 'form-errors' });
  const button = h('button', { type: 'submit', class: 'primary' }, 'Analyse');
  let dropped = null;

  const showFile = (chosen) => {
    dropped = chosen;
    fileName.textContent = chosen ? `${chosen.name} (${Math.ceil(chosen.size / 1024)} KiB) will be uploaded.` : 'No file chosen.';
  };
  file.addEventListener('change', () => showFile(file.files[0] || null));
  drop.addEventListener('dragover', (event) => {
    event.preventDefault();
    drop.classList.add('over');
  });
  drop.addEventListener('dragleave', () => drop.classList.remove('over'));
  drop.addEventListener('drop', (event) => {
    event.preventDefault();
    drop.classList.remove('over');
    const chosen = event.dataTransfer && event.dataTransfer.files[0];
    if (chosen) showFile(chosen);
  });

  const form = h('form', { id: 'submit-form', class: 'card' },
    field('Image URL', url, 'Fetched by the service. Or upload a file instead:'),
    drop,
    h('fieldset', null,
      h('legend', null, 'Also'),
      h('div', { class: 'check' }, annotate, h('label', { for: 'task-annotate' }, 'Draw the boxes into an image (annotate)')),
      h('div', { class: 'check' }, dream, h('label', { for: 'task-dream' }, 'Dream (DeepDream, slow)'))),
    field('Minimum score', minScore, 'Detections below this confidence (0–1) are left out.'),
    errors,
    h('div', { class: 'actions' }, button));

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    errors.replaceChildren();
    const tasks = [...BASE_TASKS];
    if (annotate.checked) tasks.push('annotate');
    if (dream.checked) tasks.push('dream');
    const options = { tasks };
    const score = minScore.value.trim();
    if (score !== '') options.min_score = Number(score);
    const chosen = dropped || file.files[0] || null;
    if (!chosen && !url.value.trim()) {
      errors.replaceChildren(errorBox({ code: 'missing_image', message: 'give an image URL or choose a file' }));
      url.focus();
      return;
    }
    button.disabled = true;
    try {
      let job;
      if (chosen) {
        const body = new FormData();
        body.append('options', new Blob([JSON.stringify(options)], { type: 'application/json' }));
        body.append('file', chosen, chosen.name || 'image');
        job = await request('POST', '/v1/jobs', { body });
      } else {
        job = await request('POST', '/v1/jobs', { json: { url: url.value.trim(), ...options } });
      }
      location.hash = `#/jobs/${encodeURIComponent(job.id)}`;
    } catch (e) {
      errors.replaceChildren(errorBox(e));
    } finally {
      button.disabled = false;
    }
  });

  main.replaceChildren(heading('Analyse an image'),
    h('p', { class: 'muted' }, 'Format, EXIF, GPS, colours, ICC, hashes, and the objects the detector finds.'),
    form);
}
