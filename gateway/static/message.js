// Rendering of chat messages. An answer view owns its model object (the message stored in
// localStorage): apply() updates both from one stream event, restore() rebuilds a saved one.

import { el, byId, formatMs } from './dom.js';

// "[1]" or "[1, 3]" in the answer text refers to citation n.
const MARKER = /\[(\d{1,3}(?:\s*,\s*\d{1,3})*)\]/g;
// The end of a delta that may be the start of a marker whose rest is in the next delta.
const PARTIAL_MARKER = /\[[\d,\s]{0,20}$/;

export function renderUserMessage(msg) {
  return el('article', { class: 'message user', 'aria-label': 'Question' },
    el('p', { class: 'message-text', text: msg.text }));
}

/** Streams text into `node`, turning citation markers into buttons as they complete. */
class AnswerText {
  constructor(node, openCitation) {
    this.node = node;
    this.openCitation = openCitation;
    this.held = '';
  }

  append(text) {
    const all = this.held + text;
    this.held = all.match(PARTIAL_MARKER)?.[0] ?? '';
    this.write(all.slice(0, all.length - this.held.length));
  }

  /** Flush held text and turn markers that never got a citation back into plain text. */
  finish(hasCitation) {
    this.write(this.held);
    this.held = '';
    for (const button of this.node.querySelectorAll('.citation-marker')) {
      if (!hasCitation(Number(button.dataset.n))) button.replaceWith(button.textContent);
    }
    this.node.normalize();
  }

  write(text) {
    let last = 0;
    for (const match of text.matchAll(MARKER)) {
      this.node.append(text.slice(last, match.index));
      for (const n of match[1].split(',')) this.node.append(this.marker(Number(n)));
      last = match.index + match[0].length;
    }
    if (last < text.length) this.node.append(text.slice(last));
  }

  marker(n) {
    return el('button', {
      type: 'button', class: 'citation-marker', 'data-n': n, 'aria-label': `Source ${n}`,
      onclick: (e) => this.openCitation(n, e.currentTarget),
    }, `[${n}]`);
  }
}

export function createAnswerView(msg) {
  msg.citations ??= [];
  const answer = el('div', { class: 'answer-text' });
  const progress = el('p', { class: 'progress muted small', hidden: true });
  const notice = el('p', { class: 'notice', hidden: true });
  const sourceList = el('ul');
  const sources = el('section', { class: 'sources', 'aria-label': 'Sources', hidden: true },
    el('h3', { text: 'Sources' }), sourceList);
  const meta = el('footer', { class: 'meta muted small', hidden: true });
  const root = el('article', { class: 'message assistant', 'aria-label': 'Answer' },
    answer, progress, notice, sources, meta);

  const findCitation = (n) => msg.citations.find((c) => c.n === n);
  const text = new AnswerText(answer, (n, opener) => showCitation(n, findCitation(n), opener));

  function renderSources() {
    sources.hidden = msg.citations.length === 0;
    sourceList.replaceChildren(...msg.citations.map(sourceItem));
  }

  function showNotice(message, kind) {
    notice.hidden = false;
    notice.className = `notice ${kind}`;
    notice.textContent = message;
  }

  function renderMeta() {
    meta.hidden = false;
    meta.replaceChildren(...metaParts(msg.meta));
  }

  return {
    root,

    /** Update the model and the view from one stream event. */
    apply(type, data) {
      switch (type) {
        case 'retrieval': {
          const n = data.hits?.length ?? 0;
          progress.textContent = `Found ${n} passage${n === 1 ? '' : 's'}. Writing the answer…`;
          break;
        }
        case 'delta':
          progress.hidden = true;
          msg.text += data.text ?? '';
          text.append(data.text ?? '');
          break;
        case 'citation': {
          const { n, doc_id, chunk_id, title, text: passage } = data;
          msg.citations = msg.citations.filter((c) => c.n !== n);
          msg.citations.push({ n, doc_id, chunk_id, title, text: passage });
          msg.citations.sort((a, b) => a.n - b.n);
          renderSources();
          break;
        }
        case 'done':
          msg.meta = { cached: !!data.cached, trace_id: data.trace_id, timings: data.timings, finish_reason: data.finish_reason };
          renderMeta();
          break;
        case 'error':
          msg.error = { code: data.code, message: data.message || 'The answer failed.' };
          showNotice(msg.error.message, 'error');
          break;
      }
    },

    startProgress() {
      progress.hidden = false;
      progress.textContent = 'Searching your documents…';
    },

    markStopped() {
      msg.stopped = true;
      showNotice('Stopped.', 'stopped');
    },

    finish() {
      progress.hidden = true;
      text.finish((n) => !!findCitation(n));
    },

    /** Rebuild a saved message. */
    restore() {
      text.append(msg.text);
      renderSources();
      if (msg.meta) renderMeta();
      if (msg.error) showNotice(msg.error.message, 'error');
      else if (msg.stopped) showNotice('Stopped.', 'stopped');
      // Saved mid-stream (the page was closed or reloaded while answering).
      else if (!msg.meta) showNotice('Interrupted before the answer was complete.', 'stopped');
      this.finish();
    },
  };
}

function sourceItem(c) {
  return el('li', {},
    el('details', {},
      el('summary', {},
        el('span', { class: 'source-n', text: `[${c.n}]` }), ' ',
        c.title || 'Untitled', ' ',
        el('code', { class: 'doc-id', text: c.doc_id })),
      el('blockquote', { class: 'passage', text: c.text })));
}

function metaParts(meta) {
  const t = meta.timings || {};
  const parts = [];
  if (meta.cached) parts.push(el('span', { class: 'badge', text: 'cached' }));
  parts.push(el('span', { text: `retrieval ${formatMs(t.retrieval_ms)} · first token ${formatMs(t.first_token_ms)} · total ${formatMs(t.total_ms)}` }));
  if (meta.finish_reason && !/^stop$/i.test(meta.finish_reason)) {
    parts.push(el('span', { text: `finish: ${meta.finish_reason}` }));
  }
  if (meta.trace_id) {
    parts.push(el('span', {}, 'trace ', el('code', { class: 'trace-id', text: meta.trace_id }), jaegerLink(meta.trace_id)));
  }
  return parts;
}

// The page may set window.LIKEOPT_JAEGER_URL (e.g. http://localhost:16686) to link traces.
function jaegerLink(traceId) {
  const base = window.LIKEOPT_JAEGER_URL;
  if (!base) return null;
  return el('a', {
    href: `${String(base).replace(/\/+$/, '')}/trace/${encodeURIComponent(traceId)}`,
    target: '_blank', rel: 'noopener', class: 'trace-link',
  }, 'open in Jaeger');
}

const dialog = byId('citation-dialog');
// Clicks on the backdrop land on the <dialog> itself (its content sits in .dialog-body).
dialog.addEventListener('click', (e) => {
  if (e.target === dialog) dialog.close();
});

function showCitation(n, citation, opener) {
  byId('citation-title').textContent = `[${n}] ${citation?.title || 'Untitled'}`;
  byId('citation-doc').textContent = citation?.doc_id ?? '–';
  byId('citation-chunk-wrap').hidden = citation?.chunk_id == null;
  byId('citation-chunk').textContent = citation?.chunk_id ?? '';
  byId('citation-text').textContent = citation?.text || 'This passage has not arrived yet.';
  dialog.showModal();
  // Put keyboard users back where they were reading.
  dialog.addEventListener('close', () => opener.focus(), { once: true });
}
