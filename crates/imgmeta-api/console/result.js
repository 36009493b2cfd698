// A finished job's result: the figure with its boxes, the detections table, the metadata
// (format, EXIF, GPS, colours, ICC, hashes, descriptive, content credentials) and the images
// the job made. Field meanings: docs/result.md.

import { apiPath } from './api.js';
import { dataTable, factTable, formatBytes, h } from './dom.js';
import { artifactsOf, classColour, detectionFigure, formatScore, linkRowToBox } from './figure.js';

const ORIENTATIONS = {
  1: 'upright',
  2: 'mirrored',
  3: 'rotated 180°',
  4: 'mirrored vertically',
  5: 'mirrored, rotated 90° counter-clockwise',
  6: 'rotated 90° clockwise to view',
  7: 'mirrored, rotated 90° clockwise',
  8: 'rotated 90° counter-clockwise to view',
};

export function resultSections(job) {
  const result = job.result;
  if (!result) return [];
  const image = result.image || null;
  const figure = detectionFigure(job);
  const table = detectionsTable(result.objects);
  return [
    figure || table ? h('div', { class: 'result-top' }, figure, table) : null,
    image ? section('Metadata', 'metadata', [
      imageFacts(image),
      exifFacts(image.exif),
      gpsFacts(image.exif && image.exif.gps),
      colourSwatches(image.dominant_colors),
      factTable('Colour profile (ICC)', [['Description', image.icc && image.icc.description, 'icc.description']], { id: 'icc' }),
      factTable('Hashes', [['SHA-256', image.sha256, 'sha256'], ['Perceptual hash', image.phash, 'phash']], { id: 'hashes' }),
      descriptiveFacts(image.descriptive),
      credentialFacts(image.c2pa),
      warningsList(image.warnings),
    ]) : null,
    artifactGallery(job),
  ];
}

/** Milliseconds per stage, folded away. */
export function timingsOf(job) {
  return job.result ? timings(job.result.timings_ms) : null;
}

function section(title, id, children) {
  const kept = children.filter(Boolean);
  if (kept.length === 0) return null;
  return h('section', { id, 'aria-labelledby': `${id}-title` }, h('h2', { id: `${id}-title` }, title), h('div', { class: 'grid' }, kept));
}

function detectionsTable(objects) {
  if (!objects) return null;
  const detections = objects.detections || [];
  const model = objects.model || {};
  const note = h('p', { class: 'muted' },
    `${model.name || 'detector'}, minimum score ${model.min_score ?? ''}; boxes as x_min, y_min – x_max, y_max in upright-image pixels.`);
  if (detections.length === 0) {
    return h('section', { id: 'detections', 'aria-labelledby': 'detections-title' },
      h('h2', { id: 'detections-title' }, 'Detections'), h('p', null, 'No objects above the minimum score.'), note);
  }
  const rows = detections.map((d, index) => {
    const b = d.box || {};
    const swatch = h('span', { class: 'dot', 'aria-hidden': 'true' });
    swatch.style.backgroundColor = classColour(d.class_id);
    return {
      attrs: { 'data-index': index, tabindex: '0' },
      cells: [
        String(index + 1),
        { class: 'label', content: [swatch, d.label] },
        { class: 'num', content: formatScore(d.score) },
        { class: 'num box', content: `${b.x_min}, ${b.y_min} – ${b.x_max}, ${b.y_max}` },
      ],
    };
  });
  const table = dataTable('Detected objects, most confident first', ['#', 'Label', 'Score', 'Box (px)'], rows, { id: 'detections-table' });
  table.querySelectorAll('tbody tr').forEach((row, index) => linkRowToBox(row, index));
  return h('section', { id: 'detections', 'aria-labelledby': 'detections-title' },
    h('h2', { id: 'detections-title' }, 'Detections'), table, note);
}

function imageFacts(image) {
  const stored = image.width && image.height ? `${image.width} × ${image.height}` : null;
  const upright = image.oriented_width && (image.oriented_width !== image.width || image.oriented_height !== image.height)
    ? `${image.oriented_width} × ${image.oriented_height}` : null;
  return factTable('Image', [
    ['Format', image.format ? `${image.format} (${image.mime || ''})` : null, 'format'],
    ['Size as stored', stored, 'dimensions'],
    ['Size upright', upright, 'oriented'],
    ['File size', image.bytes !== undefined ? `${formatBytes(image.bytes)} (${image.bytes} bytes)` : null, 'bytes'],
    ['Frames', image.frames, 'frames'],
    ['Pixel layout', image.color_type ? `${image.color_type}, ${image.bit_depth} bit${image.has_alpha ? ', with alpha' : ''}` : null, 'color_type'],
  ], { id: 'image-facts' });
}

function exifFacts(exif) {
  if (!exif) return null;
  const n = (v) => (typeof v === 'number' ? v : null);
  const exposure = n(exif.exposure_time_s);
  return factTable('EXIF', [
    ['Make', exif.make, 'exif.make'],
    ['Model', exif.model, 'exif.model'],
    ['Lens', exif.lens, 'exif.lens'],
    ['Taken', exif.datetime_original, 'exif.datetime_original'],
    ['Exposure', exposure !== null ? `${exposure} s${exposure > 0 && exposure < 1 ? ` (1/${Math.round(1 / exposure)})` : ''}` : null, 'exif.exposure_time_s'],
    ['Aperture', n(exif.f_number) !== null ? `ƒ/${exif.f_number}` : null, 'exif.f_number'],
    ['ISO', n(exif.iso), 'exif.iso'],
    ['Focal length', n(exif.focal_length_mm) !== null ? `${exif.focal_length_mm} mm` : null, 'exif.focal_length_mm'],
    ['Orientation', n(exif.orientation) !== null ? `${exif.orientation} (${ORIENTATIONS[exif.orientation] || 'unknown'})` : null, 'exif.orientation'],
  ], { id: 'exif' });
}

function gpsFacts(gps) {
  if (!gps || typeof gps.latitude !== 'number' || typeof gps.longitude !== 'number') return null;
  const lat = gps.latitude.toFixed(6);
  const lon = gps.longitude.toFixed(6);
  const map = `https://www.openstreetmap.org/?mlat=${lat}&mlon=${lon}#map=15/${lat}/${lon}`;
  return factTable('GPS', [
    ['Coordinates', h('span', null, `${lat}, ${lon} `,
      h('a', { href: map, rel: 'noopener noreferrer external', target: '_blank', id: 'map-link' }, 'Map (openstreetmap.org)')), 'gps.coordinates'],
    ['Altitude', typeof gps.altitude_m === 'number' ? `${gps.altitude_m} m` : null, 'gps.altitude_m'],
  ], { id: 'gps' });
}

function colourSwatches(colours) {
  if (!Array.isArray(colours) || colours.length === 0) return null;
  const items = colours.map((c) => {
    const hex = /^#[0-9a-fA-F]{6}$/.test(c.hex) ? c.hex : null;
    const swatch = h('span', { class: 'swatch', 'aria-hidden': 'true' });
    if (hex) swatch.style.backgroundColor = hex;
    return h('li', { 'data-hex': hex }, swatch, h('code', null, c.hex), ` ${(c.fraction * 100).toFixed(1)} %`);
  });
  return h('div', { class: 'facts', id: 'colours' }, h('h3', null, 'Dominant colours'), h('ul', { class: 'swatches' }, items));
}

function descriptiveFacts(d) {
  if (!d) return null;
  return factTable('Descriptive (XMP / IPTC)', [
    ['Title', d.title, 'descriptive.title'],
    ['Description', d.description, 'descriptive.description'],
    ['Keywords', Array.isArray(d.keywords) && d.keywords.length ? d.keywords.join(', ') : null, 'descriptive.keywords'],
    ['Creator', d.creator, 'descriptive.creator'],
    ['Copyright', d.copyright, 'descriptive.copyright'],
    ['Credit', d.credit, 'descriptive.credit'],
    ['Digital source type', d.digital_source_type, 'descriptive.digital_source_type'],
  ], { id: 'descriptive' });
}

function credentialFacts(c) {
  if (!c || (!c.present && !c.ai_generated)) return null;
  const yesNo = (v) => (v === null || v === undefined ? 'not checked' : v ? 'yes' : 'no');
  return factTable('Content credentials (C2PA)', [
    ['Manifest', c.present ? 'present' : 'none', 'c2pa.present'],
    ['Valid', c.present ? yesNo(c.valid) : null, 'c2pa.valid'],
    ['Signer', c.signer, 'c2pa.signer'],
    ['Made by', c.claim_generator, 'c2pa.claim_generator'],
    ['AI-generated', c.ai_generated ? 'yes' : 'no', 'c2pa.ai_generated'],
    ['Failures', Array.isArray(c.failures) && c.failures.length ? c.failures.join(', ') : null, 'c2pa.failures'],
  ], { id: 'c2pa' });
}

function warningsList(warnings) {
  if (!Array.isArray(warnings) || warnings.length === 0) return null;
  return h('div', { class: 'facts', id: 'warnings' }, h('h3', null, 'Warnings'),
    h('ul', null, warnings.map((w) => h('li', null, h('code', null, w.code), ` ${w.message}`))));
}

function artifactGallery(job) {
  const made = artifactsOf(job).filter((a) => !a.name.startsWith('preview.') && apiPath(a.url));
  if (made.length === 0) return null;
  return h('section', { id: 'artifacts', 'aria-labelledby': 'artifacts-title' },
    h('h2', { id: 'artifacts-title' }, 'Images made'),
    h('div', { class: 'gallery' }, made.map((a) => h('figure', { 'data-name': a.name },
      artifactImage(a),
      h('figcaption', null, h('a', { href: a.url }, a.name),
        a.width ? ` ${a.width} × ${a.height}` : '', a.bytes ? `, ${formatBytes(a.bytes)}` : '')))));
}

/** An image the job made, no wider than twice its own width (a small image stays small). */
function artifactImage(a) {
  const img = h('img', { src: a.url, alt: `${a.name} made by the job`, width: a.width || null, height: a.height || null });
  if (a.width) img.style.maxWidth = `${Math.max(320, a.width * 2)}px`;
  return img;
}

function timings(t) {
  if (!t) return null;
  const rows = Object.entries(t).filter(([, v]) => typeof v === 'number').map(([k, v]) => [k, `${v} ms`, `timings.${k}`]);
  return h('details', { class: 'timings' }, h('summary', null, 'Timings'), factTable('Milliseconds per stage', rows));
}
