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

/** Make parent's children exactly `nodes`, moving none that is in its place already: focus in those stays. */
export function placeChildren(parent, nodes) {
  nodes.forEach((node, i) => {
    if (parent.childNodes[i] !== node) parent.insertBefore(node, parent.childNodes[i] ?? null);
  });
  while (parent.childNodes.length > nodes.length) parent.lastChild.remove();
}

/**
 * Make target's children look like those of source (a fragment or element), keeping every node that already
 * matches and changing it in place: nodes kept keep keyboard focus and text selection through a redraw.
 * Elements match by tag and data-key; a kept element keeps its own listeners, so elements whose listeners
 * differ need different keys.
 */
export function patchChildren(target, source) {
  const fresh = [...source.childNodes];
  fresh.forEach((node, i) => {
    const old = target.childNodes[i];
    if (!old) target.append(node);
    else if (sameKind(old, node)) patchNode(old, node);
    else target.replaceChild(node, old);
  });
  while (target.childNodes.length > fresh.length) target.lastChild.remove();
}

function sameKind(a, b) {
  if (a.nodeType !== b.nodeType) return false;
  if (a.nodeType !== Node.ELEMENT_NODE) return true;
  return a.tagName === b.tagName && a.getAttribute('data-key') === b.getAttribute('data-key');
}

function patchNode(old, node) {
  if (old.nodeType !== Node.ELEMENT_NODE) {
    if (old.nodeValue !== node.nodeValue) old.nodeValue = node.nodeValue;
    return;
  }
  for (const { name } of [...old.attributes]) if (!node.hasAttribute(name)) old.removeAttribute(name);
  for (const { name, value } of node.attributes) if (old.getAttribute(name) !== value) old.setAttribute(name, value);
  patchChildren(old, node);
}
