// Saved conversations in localStorage, newest first:
// [{id, conversationId, title, updated, messages: [{role, text, turn?, citations?, meta?, error?, stopped?,
//   withdrawn?}]}]
// `turn` is the local id a question and its answer share (absent in conversations saved before it was added).
// `id` is local; `conversationId` is the server's, chosen here before the first question is sent (so it is
// known even when that answer is stopped at once) and confirmed by the answer's events.

import { localId } from './dom.js';
import { JWT_MODE, signedInAs } from './api.js';

const MAX_CONVERSATIONS = 50;

/** Where the signed-in person's conversations are kept, read at each use: with LIKEOPT_AUTH=jwt each person's
 *  apart (another signing in on the same browser never sees them), and none at all while nobody is signed in. */
function storageKey() {
  const who = signedInAs();
  if (JWT_MODE && !who) return null;
  return 'likeopt.conversations' + (who ? `.${who}` : '');
}

export function loadAll() {
  const key = storageKey();
  if (!key) return [];
  try {
    const list = JSON.parse(localStorage.getItem(key));
    return Array.isArray(list) ? list : [];
  } catch {
    return [];
  }
}

function writeAll(list) {
  const key = storageKey();
  if (!key) return;
  // localStorage holds ~5 MB; when full, give up the oldest conversations rather than the new answer.
  // Down to none: an empty list must be written too, or deleting the last conversation would not stick.
  for (let keep = list.length; keep >= 0; keep--) {
    try {
      localStorage.setItem(key, JSON.stringify(list.slice(0, keep)));
      return;
    } catch {
      /* quota exceeded: retry with one fewer */
    }
  }
}

export function find(id) {
  return loadAll().find((c) => c.id === id) || null;
}

export function create(firstQuestion) {
  const title = firstQuestion.replace(/\s+/g, ' ').trim().slice(0, 80);
  return { id: localId(), conversationId: newConversationId(), title, updated: Date.now(), messages: [] };
}

/** 32 random hex digits (crypto.getRandomValues, which pages served over plain http have too). */
function newConversationId() {
  return [...crypto.getRandomValues(new Uint8Array(16))].map((b) => b.toString(16).padStart(2, '0')).join('');
}

/** Insert or replace `conv` and move it to the top. */
export function save(conv) {
  conv.updated = Date.now();
  const others = loadAll().filter((c) => c.id !== conv.id);
  writeAll([conv, ...others].slice(0, MAX_CONVERSATIONS));
}

/** Keep this tab's `turn` (its question and answer, which share a `turn` id) in the stored copy of `conv`: in its
 *  place when the copy holds it, else after the turns other tabs added meanwhile, so that theirs are never saved
 *  over. Returns the stored conversation, or null when it is no longer stored (deleted in another tab): a deleted
 *  conversation stays deleted. */
export function saveTurn(conv, turn) {
  const stored = find(conv.id);
  if (!stored) return null;
  const id = turn[0].turn;
  const ours = (m) => turn.find((t) => t.role === m.role) ?? m;
  stored.messages = stored.messages.some((m) => m.turn === id)
    ? stored.messages.map((m) => (m.turn === id ? ours(m) : m))
    : [...stored.messages, ...turn];
  stored.conversationId = conv.conversationId || stored.conversationId; // confirmed by this answer's events
  save(stored);
  return stored;
}

/** The ids of the documents the answers of `conv` cite, each once, but for citations already withdrawn. */
export function citedDocuments(conv) {
  const cited = conv.messages.flatMap((m) => (m.citations ?? []).filter((c) => !c.withdrawn).map((c) => c.doc_id));
  return [...new Set(cited)];
}

/** Withdraw, in `conv`, each citation of a document not in `readable` (a Set of the ids the reader may still
 *  read): its title and passage go, as does the text of the answer citing it, which may repeat the passage, as
 *  the server withholds them (GET /api/v1/conversations/{id}). Returns whether anything changed. */
export function withdraw(conv, readable) {
  let changed = false;
  for (const msg of conv.messages) {
    for (const c of msg.citations ?? []) {
      if (c.withdrawn || readable.has(c.doc_id)) continue;
      Object.assign(c, { withdrawn: true, title: '', text: '' });
      Object.assign(msg, { withdrawn: true, text: '' });
      changed = true;
    }
  }
  return changed;
}

/** withdraw() in the stored copy of conversation `id`, which keeps its place in the list (nothing was said in
 *  it). Returns that copy when anything changed, else null. */
export function withdrawStored(id, readable) {
  const all = loadAll();
  const conv = all.find((c) => c.id === id);
  if (!conv || !withdraw(conv, readable)) return null;
  writeAll(all);
  return conv;
}

export function remove(id) {
  writeAll(loadAll().filter((c) => c.id !== id));
}

/** Call `fn` when another tab changes the saved conversations. */
export function onExternalChange(fn) {
  window.addEventListener('storage', (e) => {
    if (e.key === storageKey() || e.key === null) fn();
  });
}
