// Tiny DOM helpers. Everything that came from the server goes in through
// text nodes (append with strings, textContent), never through innerHTML.

/**
 * Create an element. `props`: `class`, `text`, `on<event>` handlers; any other key becomes
 * an attribute (null/false skips it, true sets it empty). String children become text nodes.
 */
export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value == null || value === false) continue;
    if (key === 'class') node.className = value;
    else if (key === 'text') node.textContent = value;
    else if (key.startsWith('on')) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? '' : value);
  }
  node.append(...children.filter((c) => c != null && c !== false && c !== ''));
  return node;
}

export const byId = (id) => document.getElementById(id);

/** A dash for missing numbers, so a partial dashboard payload still renders. */
export const DASH = '–';

export function isNum(v) {
  return typeof v === 'number' && Number.isFinite(v);
}

export function formatMs(ms) {
  if (!isNum(ms)) return DASH;
  return ms < 1000 ? `${ms < 10 ? ms.toFixed(1) : Math.round(ms)} ms` : `${(ms / 1000).toFixed(2)} s`;
}

export function formatNum(v, digits = 0) {
  return isNum(v) ? v.toFixed(digits) : DASH;
}

export function formatPercent(ratio) {
  return isNum(ratio) ? `${(ratio * 100).toFixed(1)} %` : DASH;
}

/** Ids that work without a secure context (crypto.randomUUID needs https or localhost). */
export function localId() {
  return Date.now().toString(36) + Math.random().toString(36).slice(2, 8);
}
