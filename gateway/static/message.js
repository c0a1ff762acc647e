// Rendering of chat messages. An answer view owns its model object (the message stored in
// localStorage): apply() updates both from one stream event, restore() rebuilds a saved one.

import { el, byId, formatMs, patchChildren, placeChildren } from './dom.js';
import { feedbackForm } from './feedback.js';
import { renderMarkdown, plainText } from './markdown.js';

// The end of a delta that may be the start of a marker whose rest is in the next delta.
const PARTIAL_MARKER = /\[[\d,\s]{0,20}$/;

export function renderUserMessage(msg) {
  return el('article', { class: 'message user', 'aria-label': 'Question' },
    el('p', { class: 'message-text', dir: 'auto', text: msg.text }));
}

/**
 * The answer as rendered Markdown, drawn again from the whole text at each delta (answers are a few
 * hundred characters, so this is cheap and a construct split across deltas renders once complete).
 * A redraw changes the nodes already shown in place, so a marker keeps keyboard focus while the answer
 * streams. A marker still being written is held back; after finish(), markers no citation arrived for are text.
 */
class AnswerText {
  constructor(node, openCitation, citationOf) {
    this.node = node;
    this.openCitation = openCitation;
    this.citationOf = citationOf;
    this.text = '';
    this.finished = null; // (n) => whether citation n exists, once the stream ended
  }

  append(text) {
    this.text += text;
    this.render();
  }

  /** Start again from nothing: the answer is being sent anew, whole. */
  reset() {
    this.text = '';
    this.render();
  }

  finish(hasCitation) {
    this.finished = hasCitation;
    this.render();
  }

  render() {
    const shown = this.finished ? this.text : this.text.replace(PARTIAL_MARKER, '');
    const focused = document.activeElement;
    const place = this.node.contains(focused) ? this.placeOf(focused) : null;
    patchChildren(this.node, renderMarkdown(shown, (n) => this.marker(n)));
    // The text before the marker was read anew (a '**' closed around it, say): focus its equivalent.
    if (place && !focused.isConnected) this.focusPlace(place);
  }

  marker(n) {
    if (this.finished && !this.finished(n)) return `[${n}]`;
    const unsupported = this.citationOf(n)?.supported === false;
    return el('button', {
      type: 'button', class: unsupported ? 'citation-marker unsupported' : 'citation-marker', 'data-n': n,
      'data-key': `marker-${n}`, 'aria-label': `Source ${n}${unsupported ? ' (does not support this sentence)' : ''}`,
      onclick: (e) => this.openCitation(n, e.currentTarget),
    }, `[${n}]`);
  }

  /** The k-th marker of citation n, as {n, k}: the same place in the answer after a redraw. */
  placeOf(marker) {
    if (!marker.classList.contains('citation-marker')) return null;
    const n = Number(marker.dataset.n);
    return { n, k: this.markers(n).indexOf(marker) };
  }

  /** Focus the marker at place; failing that (it became plain text as the answer ended), the answer itself. */
  focusPlace({ n, k }) {
    const marker = this.markers(n)[k];
    if (marker) {
      marker.focus();
    } else {
      this.node.tabIndex = -1;
      this.node.focus();
    }
  }

  markers(n) {
    return [...this.node.querySelectorAll('.citation-marker')].filter((m) => Number(m.dataset.n) === n);
  }
}

export function createAnswerView(msg) {
  msg.citations ??= [];
  // A live region: a screen reader reads the answer out once it is written (aria-busy holds it back until then).
  const answer = el('div', { class: 'answer-text', dir: 'auto', 'aria-live': 'polite' });
  const progress = el('p', { class: 'progress muted small', hidden: true });
  const notice = el('p', { class: 'notice', hidden: true });
  const sourceList = el('ul');
  const sources = el('section', { class: 'sources', 'aria-label': 'Sources', hidden: true },
    el('h3', { text: 'Sources' }), sourceList);
  const meta = el('footer', { class: 'meta muted small', hidden: true });
  const root = el('article', { class: 'message assistant', 'aria-label': 'Answer' },
    answer, progress, notice, sources, meta);

  const findCitation = (n) => msg.citations.find((c) => c.n === n);
  const text = new AnswerText(answer, (n, opener) => {
    const place = text.placeOf(opener);
    // Closing puts keyboard users back where they were reading (the same place, had the marker been redrawn).
    showCitation(text, n, findCitation(n), () => (opener.isConnected ? opener.focus() : text.focusPlace(place)));
  }, findCitation);

  const sourceItems = new WeakMap(); // citation → its item: a redraw keeps the items shown (open, or focused)
  function renderSources() {
    sources.hidden = msg.citations.length === 0;
    placeChildren(sourceList, msg.citations.map((c) => sourceItems.get(c) ?? sourceItems.set(c, sourceItem(c)).get(c)));
  }

  function showNotice(message, kind) {
    notice.hidden = false;
    notice.className = `notice ${kind}`;
    notice.textContent = message;
  }

  /** A withheld answer keeps its timings and trace, not its support badge nor the feedback form: its reader can no
   *  longer see what either would be about. */
  function renderMeta() {
    meta.hidden = false;
    meta.replaceChildren(...metaParts(msg.meta, msg.withdrawn));
    if (msg.meta.answer_id && !msg.withdrawn) meta.append(feedbackForm(msg));
  }

  /** Markers of citations the grounding check did not confirm look (and read) different: draw them again. */
  function markSupport() {
    text.render();
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
          const { n, doc_id, chunk_id, title, text: passage, supported, support } = data;
          msg.citations = msg.citations.filter((c) => c.n !== n);
          msg.citations.push({ n, doc_id, chunk_id, title, text: passage, supported: supported !== false, support });
          msg.citations.sort((a, b) => a.n - b.n);
          renderSources();
          markSupport();
          refreshCitation(text, findCitation, true);
          break;
        }
        case 'done':
          msg.meta = {
            cached: !!data.cached, trace_id: data.trace_id, timings: data.timings, finish_reason: data.finish_reason,
            support: data.support, no_answer: !!data.no_answer, small_talk: !!data.small_talk, answer_id: data.answer_id,
          };
          renderMeta();
          break;
        case 'error':
          msg.error = { code: data.code, message: data.message || 'The answer failed.' };
          showNotice(msg.error.message, 'error');
          break;
      }
    },

    /** The answer is being written: assistive technology waits for it (aria-busy) until finish(). */
    startProgress() {
      root.setAttribute('aria-busy', 'true');
      answer.setAttribute('aria-busy', 'true');
      progress.hidden = false;
      progress.textContent = 'Searching your documents…';
    },

    /** The answer comes anew from its first event (a resumed stream's answer was written again): what arrived of
     *  the earlier one goes. */
    restart() {
      msg.text = '';
      msg.citations = [];
      renderSources();
      text.reset();
    },

    markStopped() {
      msg.stopped = true;
      showNotice('Stopped.', 'stopped');
    },

    finish() {
      root.removeAttribute('aria-busy');
      answer.removeAttribute('aria-busy');
      progress.hidden = true;
      text.finish((n) => !!findCitation(n));
      refreshCitation(text, findCitation, false);
    },

    /** Rebuild a saved message. */
    restore() {
      text.append(msg.text);
      renderSources();
      if (msg.meta) renderMeta();
      if (msg.withdrawn) showNotice(WITHDRAWN_ANSWER, 'stopped');
      else if (msg.error) showNotice(msg.error.message, 'error');
      else if (msg.stopped) showNotice('Stopped.', 'stopped');
      // Saved mid-stream (the page was closed or reloaded while answering).
      else if (!msg.meta) showNotice('Interrupted before the answer was complete.', 'stopped');
      this.finish();
    },
  };
}

const WITHDRAWN_ANSWER = 'This answer is no longer available: it cited a document you can no longer read.';
const WITHDRAWN_PASSAGE = 'No longer available: you can no longer read this document (its access changed, or it '
  + 'was deleted).';

function sourceItem(c) {
  if (c.withdrawn) {
    return el('li', { class: 'withdrawn' },
      el('span', { class: 'source-n', text: `[${c.n}]` }), ' ', WITHDRAWN_PASSAGE, ' ',
      el('code', { class: 'doc-id', text: c.doc_id }));
  }
  const unsupported = c.supported === false;
  return el('li', { class: unsupported ? 'unsupported' : null },
    el('details', {},
      el('summary', {},
        el('span', { class: 'source-n', text: `[${c.n}]` }), ' ',
        el('span', { dir: 'auto', text: c.title || 'Untitled' }), ' ',
        el('code', { class: 'doc-id', text: c.doc_id }),
        unsupported ? el('span', {
          class: 'badge warn', text: 'does not support the answer',
          title: 'The sentence citing this passage is not found in it: treat it as unverified.',
        }) : null),
      el('blockquote', { class: 'passage', dir: 'auto', text: plainText(c.text) })));
}

/** How much of the answer its cited passages support, as a badge (absent for old saved answers). */
function supportBadge(meta) {
  if (meta.small_talk) return null; // a greeting's reply claims nothing
  if (meta.no_answer) {
    return el('span', {
      class: 'badge warn no-answer', text: 'not in your documents',
      title: 'No passage found is about this question, so nothing is cited.',
    });
  }
  if (typeof meta.support !== 'number') return null;
  const percent = Math.round(meta.support * 100);
  const level = percent >= 80 ? 'good' : percent >= 50 ? 'fair' : 'warn';
  return el('span', {
    class: `badge support ${level}`, text: `supported ${percent} %`,
    title: 'Share of the answer\'s sentences whose cited passage holds what they say.',
  });
}

function metaParts(meta, withheld) {
  const t = meta.timings || {};
  const parts = [];
  if (!withheld) parts.push(supportBadge(meta));
  if (meta.cached) parts.push(el('span', { class: 'badge', text: 'cached' }));
  parts.push(el('span', { text: `retrieval ${formatMs(t.retrieval_ms)} · first token ${formatMs(t.first_token_ms)} · total ${formatMs(t.total_ms)}` }));
  if (meta.finish_reason && !/^stop$/i.test(meta.finish_reason)) {
    parts.push(el('span', { text: `finish: ${meta.finish_reason}` }));
  }
  if (meta.trace_id) {
    parts.push(el('span', {}, 'trace ', el('code', { class: 'trace-id', text: meta.trace_id }), jaegerLink(meta.trace_id)));
  }
  return parts.filter(Boolean);
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

let shownCitation = null; // {owner, n}: what the dialog shows, so a passage arriving while it is open fills it in

function showCitation(owner, n, citation, focusBack) {
  shownCitation = { owner, n };
  fillCitation(n, citation, true);
  dialog.showModal();
  dialog.addEventListener('close', () => {
    shownCitation = null;
    focusBack();
  }, { once: true });
}

/** Fill the dialog in again if it shows one of owner's citations: a marker can be opened before its citation
 *  event arrives (the model writes "[1]" first), or the answer can end without one (`pending` false). */
function refreshCitation(owner, citationOf, pending) {
  if (dialog.open && shownCitation?.owner === owner) fillCitation(shownCitation.n, citationOf(shownCitation.n), pending);
}

function fillCitation(n, citation, pending) {
  if (citation?.withdrawn) {
    byId('citation-title').textContent = `[${n}] No longer available`;
    byId('citation-doc').textContent = citation.doc_id;
    byId('citation-chunk-wrap').hidden = true;
    byId('citation-text').textContent = WITHDRAWN_PASSAGE;
    return;
  }
  byId('citation-title').textContent = `[${n}] ${citation ? citation.title || 'Untitled' : ''}`.trim();
  byId('citation-doc').textContent = citation?.doc_id ?? '–';
  byId('citation-chunk-wrap').hidden = citation?.chunk_id == null;
  byId('citation-chunk').textContent = citation?.chunk_id ?? '';
  byId('citation-text').textContent = citation ? plainText(citation.text ?? '')
    : pending ? 'This passage is on its way: it shows here when the answer sends it.'
      : 'The answer ended without sending this passage.';
}
