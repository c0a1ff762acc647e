// Saved conversations in localStorage, newest first:
// [{id, conversationId, title, updated, messages: [{role, text, citations?, meta?, error?, stopped?}]}]
// `id` is local; `conversationId` is the server's, learnt from the answer's first event (`retrieval`) or its `done`.

import { localId } from './dom.js';
import { signedInAs } from './api.js';

// Signed in with a token (LIKEOPT_AUTH=jwt), each person's conversations are kept apart: another person
// signing in on the same browser never sees them in the sidebar.
const STORAGE_KEY = 'likeopt.conversations' + (signedInAs() ? `.${signedInAs()}` : '');
const MAX_CONVERSATIONS = 50;

export function loadAll() {
  try {
    const list = JSON.parse(localStorage.getItem(STORAGE_KEY));
    return Array.isArray(list) ? list : [];
  } catch {
    return [];
  }
}

function writeAll(list) {
  // localStorage holds ~5 MB; when full, give up the oldest conversations rather than the new answer.
  // Down to none: an empty list must be written too, or deleting the last conversation would not stick.
  for (let keep = list.length; keep >= 0; keep--) {
    try {
      localStorage.setItem(STORAGE_KEY, JSON.stringify(list.slice(0, keep)));
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
  return { id: localId(), conversationId: null, title, updated: Date.now(), messages: [] };
}

/** Insert or replace `conv` and move it to the top. */
export function save(conv) {
  conv.updated = Date.now();
  const others = loadAll().filter((c) => c.id !== conv.id);
  writeAll([conv, ...others].slice(0, MAX_CONVERSATIONS));
}

export function remove(id) {
  writeAll(loadAll().filter((c) => c.id !== id));
}

/** Call `fn` when another tab changes the saved conversations. */
export function onExternalChange(fn) {
  window.addEventListener('storage', (e) => {
    if (e.key === STORAGE_KEY || e.key === null) fn();
  });
}
