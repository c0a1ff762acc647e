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

/** Whether any answer of `conv` cites a passage or is withheld: only then is there anything to check. */
export function hasSources(conv) {
  return conv.messages.some((m) => m.withdrawn || m.citations?.length);
}

/** Each question of `conv` with the answer after it, as [question, answer]. */
function answeredTurns(conv) {
  return conv.messages.flatMap((m, i) => {
    const question = conv.messages[i - 1];
    return m.role === 'assistant' && question?.role === 'user' ? [[question, m]] : [];
  });
}

/** The answers of `conv` the server still holds, each mapped to its stored turn (GET /api/v1/conversations/{id}
 *  `turns`): matched by question from the last back, as the server keeps the last turns, and a question asked
 *  again straight after itself once. */
export function heldAnswers(conv, turns) {
  const held = new Map();
  const local = answeredTurns(conv);
  let before = local.length; // what is left to match: local[0 .. before)
  for (const turn of [...turns].reverse()) {
    let i = before - 1;
    while (i >= 0 && local[i][0].text.trim() !== turn.question.trim()) i--;
    if (i < 0) continue; // a turn this browser never had
    held.set(local[i][1], turn);
    before = i;
  }
  return held;
}

/** The ids of the documents the answers of `conv` cite, but for answers in `held` and citations already
 *  withdrawn, each once: what only this browser's copy still holds, and must be checked apart. */
export function citedDocuments(conv, held = new Map()) {
  const cited = conv.messages.filter((m) => !held.has(m))
    .flatMap((m) => (m.citations ?? []).filter((c) => !c.withdrawn).map((c) => c.doc_id));
  return [...new Set(cited)];
}

/** Show in answer `msg` its turn as the server holds it when either copy withholds it: the server withholds and
 *  shows again as the reader's access changes, so a passage withdrawn here comes back with access given back.
 *  Returns whether anything changed. */
function takeHeld(msg, turn) {
  if (!msg.withdrawn && !turn.withdrawn) return false;
  const before = JSON.stringify([msg.text, msg.citations, !!msg.withdrawn]);
  Object.assign(msg, { withdrawn: turn.withdrawn, text: turn.answer, citations: turn.citations });
  return JSON.stringify([msg.text, msg.citations, msg.withdrawn]) !== before;
}

/** Withdraw, in answer `msg`, each citation of a document in `decided` (a Set of ids the server was asked about)
 *  but not in `readable` (those of them the reader may still read): its title and passage go, as does the text of
 *  the answer, which may repeat the passage, as the server withholds them. Returns whether anything changed. */
function withdraw(msg, readable, decided) {
  let changed = false;
  for (const c of msg.citations ?? []) {
    if (c.withdrawn || readable.has(c.doc_id) || !decided.has(c.doc_id)) continue;
    Object.assign(c, { withdrawn: true, title: '', text: '' });
    Object.assign(msg, { withdrawn: true, text: '' });
    changed = true;
  }
  return changed;
}

/** Bring the stored copy of conversation `id` to what its reader may read now, in place (nothing was said in it):
 *  each answer the server holds as in `turns` (its stored turns, [] when it holds none), the others by the ids
 *  check (`readable` of `decided`). Returns {conv, withdrew} when anything changed, else null. */
export function refreshStored(id, turns, readable, decided) {
  const all = loadAll();
  const conv = all.find((c) => c.id === id);
  if (!conv) return null;
  const held = heldAnswers(conv, turns);
  let changed = false;
  let withdrew = false;
  for (const msg of conv.messages) {
    const turn = held.get(msg);
    const took = turn ? takeHeld(msg, turn) : withdraw(msg, readable, decided);
    changed ||= took;
    withdrew ||= took && msg.withdrawn;
  }
  if (!changed) return null;
  writeAll(all);
  return { conv, withdrew };
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
