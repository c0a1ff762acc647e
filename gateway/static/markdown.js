// A small Markdown renderer for answers, safe by construction: it builds DOM nodes and puts
// every piece of text in through text nodes, never through innerHTML, so raw HTML in an answer
// (or in a passage it copied) is shown as the characters it is. Links are made only for http(s),
// mailto and same-site addresses, and open with rel="noopener noreferrer". What it renders:
// paragraphs, headings, bullet and numbered lists, fenced code, `code`, **bold**, *italic*,
// [text](url) and the answer's [n] citation markers (through the caller's makeMarker).
// Underscore emphasis is left alone: answers about code are full of snake_case names.

import { el } from './dom.js';

const FENCE = /^\s{0,3}(`{3,}|~{3,})/;
const HEADING = /^\s{0,3}(#{1,6})\s+(.*?)\s*#*\s*$/;
const ITEM = /^\s{0,3}([-*+]|\d{1,3}[.)])\s+(.*)$/;
// A link's target: no spaces, and parentheses only in balanced pairs, one level deep (as CommonMark takes them),
// so '[a](javascript:alert(4))' is one link, not a link to 'javascript:alert(4' and a stray ')'.
const TARGET = '(?:[^()\\s]|\\([^()\\s]*\\))+';
const INLINE = new RegExp([
  '(`+)([^`]+?)\\1', // 1-2 code
  `\\[([^\\]\\n]+)\\]\\((${TARGET})\\)`, // 3-4 link
  '\\[(\\d{1,3}(?:\\s*,\\s*\\d{1,3})*)\\]', // 5 citation marker(s)
  '\\*\\*(?=\\S)([^\\n]*?\\S)\\*\\*', // 6 bold
  '\\*(?=[^\\s*])([^*\\n]*?[^\\s*])\\*', // 7 italic
].join('|'), 'g');
const SAFE_HREF = /^(https?:\/\/|mailto:|\/(?![\/\\])|#)/i; // '/\host' leads to another host

/** A fragment of block elements for text; makeMarker(n) gives the node for citation n. */
export function renderMarkdown(text, makeMarker) {
  const fragment = document.createDocumentFragment();
  const lines = text.replace(/\r\n?/g, '\n').split('\n');
  let paragraph = [];
  let list = null;
  const flush = () => {
    if (paragraph.length) fragment.append(el('p', {}, ...inline(paragraph.join(' '), makeMarker)));
    paragraph = [];
  };
  for (let i = 0; i < lines.length; i += 1) {
    const line = lines[i];
    const fence = line.match(FENCE);
    const heading = line.match(HEADING);
    const item = line.match(ITEM);
    if (fence) {
      flush(); list = null;
      const body = [];
      for (i += 1; i < lines.length && !lines[i].trimStart().startsWith(fence[1]); i += 1) body.push(lines[i]);
      fragment.append(el('pre', {}, el('code', { text: body.join('\n') })));
    } else if (heading) {
      flush(); list = null;
      const level = Math.min(6, heading[1].length + 2); // an answer's "#" is a section, not a page title
      fragment.append(el(`h${level}`, {}, ...inline(heading[2], makeMarker)));
    } else if (item) {
      flush();
      const tag = /\d/.test(item[1]) ? 'ol' : 'ul';
      if (!list || list.tagName.toLowerCase() !== tag) fragment.append(list = el(tag));
      list.append(el('li', {}, ...inline(item[2], makeMarker)));
    } else if (!line.trim()) {
      flush(); list = null;
    } else if (list && /^\s{2,}\S/.test(line)) {
      list.lastElementChild.append(' ', ...inline(line.trim(), makeMarker)); // a wrapped list item
    } else {
      list = null;
      paragraph.push(line.trim());
    }
  }
  flush();
  return fragment;
}

/** Nodes for one line of inline Markdown. */
export function inline(text, makeMarker, depth = 0) {
  const nodes = [];
  let last = 0;
  for (const m of text.matchAll(INLINE)) {
    if (m.index > last) nodes.push(text.slice(last, m.index));
    nodes.push(inlineNode(m, makeMarker, depth));
    last = m.index + m[0].length;
  }
  if (last < text.length) nodes.push(text.slice(last));
  return nodes.flat();
}

function inlineNode(m, makeMarker, depth) {
  const nested = (s) => (depth < 3 ? inline(s, makeMarker, depth + 1) : [s]);
  if (m[2] !== undefined) return el('code', { text: m[2] });
  if (m[3] !== undefined) {
    const href = m[4];
    if (!SAFE_HREF.test(href)) return nested(m[3]); // javascript:, data: and the like: the words only
    return el('a', { href, target: '_blank', rel: 'noopener noreferrer' }, ...nested(m[3]));
  }
  if (m[5] !== undefined) return m[5].split(',').map((n) => makeMarker(Number(n)));
  if (m[6] !== undefined) return el('strong', {}, ...nested(m[6]));
  return el('em', {}, ...nested(m[7]));
}

/** A passage as clean text: Markdown syntax (headings, list markers, emphasis, code ticks, link
 * targets, table rules) removed, the words kept. */
export function plainText(text) {
  return String(text)
    .replace(/^\s*(?:[-*_]\s*){3,}$|^\s*\|?\s*:?-{3,}.*$|^\s*(```|~~~).*$/gm, '')
    .replace(/^\s{0,3}(?:#{1,6}\s+|>\s?|[-*+]\s+|\d{1,3}[.)]\s+)/gm, '')
    .replace(/!?\[([^\]\n]*)\]\((?:[^()\n]|\([^()\n]*\))*\)/g, '$1') // a target as TARGET, a title too
    .replace(/(\*\*|\*|`+)(?=\S)([^\n]*?\S)\1/g, '$2')
    .replace(/[ \t]*\|[ \t]*/g, ' ')
    .replace(/\n{3,}/g, '\n\n')
    .trim();
}
