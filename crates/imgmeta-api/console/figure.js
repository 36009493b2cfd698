// The upright image with the detections drawn over it in SVG. The boxes are in pixels of the
// EXIF-oriented image (result.image.oriented_width/height); the SVG's viewBox is that size, so
// the browser scales every box by displayed size / oriented size, whatever the preview's size.

import { apiPath } from './api.js';
import { h } from './dom.js';

/** The job's artifacts, wherever the job resource lists them. */
export function artifactsOf(job) {
  const fromResult = job.result && Array.isArray(job.result.artifacts) ? job.result.artifacts : [];
  const top = Array.isArray(job.artifacts) ? job.artifacts : [];
  const seen = new Set();
  return [...fromResult, ...top].filter((a) => a && a.name && !seen.has(a.name) && seen.add(a.name));
}

/** The class's colour: a hue spread over the 80 COCO ids. */
export function classColour(classId) {
  const hue = ((Number(classId) || 0) * 47) % 360;
  return `hsl(${hue}, 85%, 48%)`;
}

/** The size the boxes are measured in: the upright image, or the stored one without rotation. */
export function orientedSize(image, preview) {
  const width = image && (image.oriented_width || image.width);
  const height = image && (image.oriented_height || image.height);
  if (width && height) return { width, height, unit: 'px' };
  if (preview && preview.width && preview.height) return { width: preview.width, height: preview.height, unit: 'normalized' };
  return null;
}

/**
 * The figure, or null when there is neither an image nor a detection to show. Each box is a
 * `<g class="det" data-index=i>` holding its `<rect>` and `label score` text.
 */
export function detectionFigure(job) {
  const result = job.result || {};
  const image = result.image || null;
  const detections = (result.objects && result.objects.detections) || [];
  const preview = artifactsOf(job).find((a) => /^preview\.(jpe?g|png)$/.test(a.name) && apiPath(a.url));
  const size = orientedSize(image, preview);
  if (!size || (!preview && detections.length === 0)) return null;

  const svg = h('svg:svg', {
    class: 'boxes',
    viewBox: `0 0 ${size.width} ${size.height}`,
    preserveAspectRatio: 'none',
    'aria-hidden': 'true',
    'data-oriented-width': size.width,
    'data-oriented-height': size.height,
  });
  const labels = h('svg:g', { class: 'labels' });
  detections.forEach((d, index) => {
    const box = boxInPixels(d, size);
    if (!box) return;
    const colour = classColour(d.class_id);
    const group = h('svg:g', { class: 'det', 'data-index': index, 'data-label': d.label });
    group.appendChild(h('svg:rect', {
      x: box.x_min, y: box.y_min, width: Math.max(0, box.x_max - box.x_min), height: Math.max(0, box.y_max - box.y_min),
      stroke: colour, fill: 'none', 'vector-effect': 'non-scaling-stroke', 'data-index': index,
    }));
    svg.appendChild(group);
    const text = h('svg:text', { x: box.x_min, y: box.y_min, fill: '#fff', stroke: '#000', 'data-index': index },
      `${d.label} ${formatScore(d.score)}`);
    labels.appendChild(text);
  });
  svg.appendChild(labels);

  const stage = h('div', { class: 'stage' });
  if (preview) {
    const width = preview.width || size.width;
    const height = preview.height || size.height;
    stage.appendChild(h('img', {
      src: preview.url, width, height, id: 'preview-image', decoding: 'async',
      alt: detections.length ? `The image, with ${detections.length} detected object(s) outlined` : 'The analysed image',
    }));
  } else {
    const blank = h('div', { class: 'blank' }, 'No preview image: the job did not ask for one.');
    blank.style.aspectRatio = `${size.width} / ${size.height}`;
    stage.appendChild(blank);
  }
  // As wide as its column, but at most twice the picture's own width (a small image stays
  // small) and, for a tall one, three quarters of the window's height.
  const natural = preview && preview.width ? preview.width : size.width;
  const ratio = (size.width / size.height).toFixed(4);
  stage.style.maxWidth = `min(100%, ${Math.max(360, natural * 2)}px, calc(75vh * ${ratio}))`;
  stage.appendChild(svg);
  placeLabels(stage, svg, labels, size);

  return h('figure', { class: 'shot', id: 'detections-figure' }, stage,
    h('figcaption', null, detections.length
      ? `${detections.length} object(s) detected; boxes in the upright image's ${size.width} × ${size.height} pixels.`
      : 'No objects detected.'));
}

function boxInPixels(detection, size) {
  if (size.unit === 'px' && detection.box) return detection.box;
  const n = detection.box_normalized;
  if (!n) return null;
  return { x_min: n.x_min * size.width, y_min: n.y_min * size.height, x_max: n.x_max * size.width, y_max: n.y_max * size.height };
}

/**
 * Keeps the labels 13 CSS pixels tall whatever the displayed size, inside the picture, and off
 * each other: a label that would cover an earlier one moves down a line.
 */
function placeLabels(stage, svg, labels, size) {
  const update = () => {
    const shown = svg.getBoundingClientRect().width;
    if (!shown) return;
    const unit = size.width / shown;
    const font = 13 * unit;
    const line = font * 1.2;
    labels.setAttribute('font-size', font.toFixed(2));
    labels.setAttribute('stroke-width', (3 * unit).toFixed(2));
    const placed = [];
    for (const text of labels.children) {
      const rect = svg.querySelector(`rect[data-index="${text.dataset.index}"]`);
      const width = text.getComputedTextLength() || font * text.textContent.length * 0.6;
      const x = Math.max(0, Math.min(Number(rect.getAttribute('x')) + 3 * unit, size.width - width));
      const top = Number(rect.getAttribute('y'));
      // The baseline: above the box when there is room, else just inside it.
      let y = top > line ? top - 4 * unit : top + font + 2 * unit;
      const overlaps = () => placed.some((p) => x < p.x + p.width && p.x < x + width && y - font < p.y && p.y - font < y);
      for (let tries = 0; overlaps() && tries < 20; tries += 1) y += line;
      placed.push({ x, y, width });
      text.setAttribute('x', x.toFixed(2));
      text.setAttribute('y', y.toFixed(2));
    }
  };
  new ResizeObserver(update).observe(stage);
}

export function formatScore(score) {
  return typeof score === 'number' ? score.toFixed(2) : '';
}

/** Highlights a detection's box while its table row has the pointer or the focus. */
export function linkRowToBox(row, index) {
  const toggle = (on) => () => {
    const group = document.querySelector(`#detections-figure g.det[data-index="${index}"]`);
    if (group) group.classList.toggle('active', on);
  };
  row.addEventListener('mouseenter', toggle(true));
  row.addEventListener('mouseleave', toggle(false));
  row.addEventListener('focusin', toggle(true));
  row.addEventListener('focusout', toggle(false));
}
