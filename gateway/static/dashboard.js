// The dashboard view: polls /api/v1/dashboard every 2 s while it is shown and draws
// number tiles, a services table and sparklines of the last 60 samples.

import { el, byId, formatMs, formatNum, formatPercent, isNum, DASH } from './dom.js';
import { requestJSON } from './api.js';

const INTERVAL_MS = 2000;
const SAMPLES = 60;
const SVG_NS = 'http://www.w3.org/2000/svg';
const WIDTH = 120; // the sparklines' viewBox
const HEIGHT = 36;

const charts = [
  { id: 'spark-p95', label: 'Latency p95', format: formatMs, pick: (d) => d.requests?.p95_ms, values: [] },
  { id: 'spark-rps', label: 'Requests per second', format: (v) => formatNum(v, 1), pick: (d) => d.requests?.rps, values: [] },
  { id: 'spark-hit-ratio', label: 'Cache hit rate', format: formatPercent, pick: (d) => d.cache?.hit_ratio, values: [], max: 1 },
];

let generation = 0; // bumped by stop; a poll from an older generation ends its loop
let timer = null;

export function startDashboard() {
  stopDashboard();
  poll(generation);
}

export function stopDashboard() {
  generation++;
  clearTimeout(timer);
}

async function poll(gen) {
  let data = null;
  let error = null;
  try {
    data = await requestJSON('/api/v1/dashboard');
  } catch (err) {
    error = err;
  }
  if (gen !== generation) return;
  if (data) render(data);
  record(data);
  setError(error);
  timer = setTimeout(() => poll(gen), INTERVAL_MS);
}

function setText(id, text) {
  byId(id).textContent = text;
}

function render(data) {
  const requests = data.requests ?? {};
  const chat = data.chat ?? {};
  const cache = data.cache ?? {};
  setText('dashboard-rps', formatNum(requests.rps, 1));
  setText('dashboard-p50', formatMs(requests.p50_ms));
  setText('dashboard-p95', formatMs(requests.p95_ms));
  setText('dashboard-ttft-p50', formatMs(chat.ttft_p50_ms));
  setText('dashboard-ttft-p95', formatMs(chat.ttft_p95_ms));
  setText('dashboard-hit-ratio', formatPercent(cache.hit_ratio));
  const l2 = cache.l2_configured === false ? 'not used' : cache.l2_healthy == null ? DASH : cache.l2_healthy ? 'OK' : 'down';
  // Which of the four caches answered: gateway and retrieval_svc near caches, cache_svc (L1 + L2).
  const layers = Object.entries(cache.by_layer ?? {}).map(([name, n]) => `${name} ${formatNum(n)}`).join(', ');
  const hits = `${formatNum(cache.hits)} hits${layers ? ` (${layers})` : ''}`;
  setText('dashboard-cache-detail', `${hits} · ${formatNum(cache.misses)} misses · Redis ${l2}`);
  renderServices(data.services ?? {});
  setText('dashboard-updated', `Updated ${new Date().toLocaleTimeString()}`);
}

const withUnit = (v, unit) => (isNum(v) ? `${formatNum(v, 1)} ${unit}` : DASH);

function renderServices(services) {
  const rows = Object.entries(services).map(([name, s]) => el('tr', {},
    el('th', { scope: 'row', text: name }),
    el('td', { text: withUnit(s?.rss_mb, 'MB') }),
    el('td', { text: withUnit(s?.cpu_percent, '%') })));
  byId('dashboard-services').replaceChildren(
    ...(rows.length ? rows : [el('tr', {}, el('td', { colspan: 3, text: DASH }))]));
}

/** Add one sample per chart; a failed poll adds a gap rather than repeating old values. */
function record(data) {
  for (const chart of charts) {
    const value = data ? chart.pick(data) : null;
    chart.values.push(isNum(value) ? value : null);
    if (chart.values.length > SAMPLES) chart.values.shift();
    drawSparkline(chart);
  }
}

function drawSparkline({ id, label, format, values, max }) {
  const svg = byId(id);
  const known = values.filter(isNum);
  if (!known.length) {
    svg.replaceChildren();
    svg.setAttribute('aria-label', `${label}: no data yet`);
    return;
  }
  const top = max ?? (Math.max(...known) || 1);
  const offset = SAMPLES - values.length; // newest sample always at the right edge
  const x = (i) => (((i + offset) / (SAMPLES - 1)) * WIDTH).toFixed(1);
  const y = (v) => (HEIGHT - 2 - (Math.min(v, top) / top) * (HEIGHT - 4)).toFixed(1);
  let d = '';
  values.forEach((v, i) => {
    if (!isNum(v)) return;
    // Start a new sub-path after a gap; "h0" with round caps shows a lone sample as a dot.
    d += isNum(values[i - 1]) ? `L${x(i)},${y(v)}` : `M${x(i)},${y(v)}h0`;
  });
  const path = document.createElementNS(SVG_NS, 'path');
  path.setAttribute('d', d);
  svg.replaceChildren(path);
  svg.setAttribute('aria-label',
    `${label}: latest ${format(known.at(-1))}, lowest ${format(Math.min(...known))}, highest ${format(Math.max(...known))}`);
}

function setError(error) {
  const status = byId('dashboard-status');
  const text = error ? `Dashboard unavailable: ${error.message}` : '';
  // Only write on change: this is a live region and polls come every 2 s.
  if (status.textContent !== text) status.textContent = text;
  status.classList.toggle('error', !!error);
}
