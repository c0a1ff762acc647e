// The chat view: composer, streaming answers, and the saved-conversation sidebar.

import { el, byId, localId } from './dom.js';
import { ApiError, requestJSON } from './api.js';
import { streamSSE } from './sse.js';
import { confirmFirst } from './confirm.js';
import * as store from './conversations.js';
import { renderUserMessage, createAnswerView } from './message.js';

// Per browser tab, so a reload reopens the conversation that was open.
const ACTIVE_KEY = 'likeopt.activeConversation';
// The composer's words, per tab: signing in again reloads the page, which must not lose them. Like every 'likeopt.'
// entry of the tab's session, they are forgotten when another person signs in (api.js).
const DRAFT_KEY = 'likeopt.draft';

const query = byId('query');
const sendButton = byId('send');
const stopButton = byId('stop');
const messages = byId('messages');
const emptyHint = byId('chat-empty');
const statusLine = byId('chat-status');
const list = byId('conversation-list');
const sidebarToggle = byId('toggle-conversations');
const sidebarPanel = byId('conversation-panel');

let current = null; // the open conversation; null until the first question of a new chat
let running = null; // AbortController of the answer being generated
let answering = null; // {conv, turn}: the question and answer being generated, kept if the page goes away
let leaving = false; // the page is being reloaded or closed: a broken stream is not the server's failure

export function initChat() {
  byId('composer').addEventListener('submit', (e) => {
    e.preventDefault();
    send();
  });
  query.addEventListener('keydown', onComposerKey);
  query.addEventListener('input', () => { autoGrow(); keepDraft(); });
  query.value = sessionStorage.getItem(DRAFT_KEY) ?? '';
  autoGrow();
  stopButton.addEventListener('click', () => running?.abort());
  byId('new-chat').addEventListener('click', () => {
    openConversation(null);
    setSidebarOpen(false);
    query.focus();
  });
  sidebarToggle.addEventListener('click', () => setSidebarOpen(sidebarToggle.getAttribute('aria-expanded') !== 'true'));
  store.onExternalChange(takeExternalChange);
  // A finished answer changed after the fact (feedback given): keep that in the saved conversation.
  messages.addEventListener('message-changed', () => { if (current) store.save(current); });
  // Reloaded or closed mid-answer: keep the text that arrived (the server keeps the turn as interrupted too).
  window.addEventListener('pagehide', () => {
    leaving = true;
    if (answering) store.saveTurn(answering.conv, answering.turn);
  });
  window.addEventListener('pageshow', () => { leaving = false; });
  openConversation(sessionStorage.getItem(ACTIVE_KEY));
  padForComposer();
}

/** The composer is pinned to the window's bottom, over the end of the conversation: its height, kept in --composer-h
 *  (0 while the chat is hidden), is the scroll padding that keeps what gets keyboard focus out from under it. */
function padForComposer() {
  const composer = byId('composer');
  new ResizeObserver(() => {
    document.documentElement.style.setProperty('--composer-h', `${composer.offsetHeight}px`);
  }).observe(composer);
}

function onComposerKey(e) {
  // Enter also confirms IME composition (Korean, Japanese…); that Enter must not send.
  // Safari reports it only through keyCode 229.
  if (e.key !== 'Enter' || e.shiftKey || e.isComposing || e.keyCode === 229) return;
  e.preventDefault();
  send();
}

function keepDraft() {
  if (query.value) sessionStorage.setItem(DRAFT_KEY, query.value);
  else sessionStorage.removeItem(DRAFT_KEY);
}

function autoGrow() {
  query.style.height = 'auto';
  query.style.height = `${Math.min(query.scrollHeight, 240)}px`;
}

let announcing = 0; // the timer of the message about to be shown

function announce(text) {
  // Clear first so that the same message twice in a row is still read out.
  clearStatus();
  announcing = setTimeout(() => { statusLine.textContent = text; }, 50);
}

/** Say nothing: what was said was about the conversation on screen before. */
function clearStatus() {
  clearTimeout(announcing);
  statusLine.textContent = '';
}

async function send() {
  const text = query.value.trim();
  if (!text) return;
  if (running) {
    announce('Still answering. Press Stop or wait for the answer.');
    return;
  }
  const limit = window.LIKEOPT_MAX_QUERY_CHARS;
  const length = [...text].length; // characters, as the server counts them
  if (limit && length > limit) {
    announce(`The question has ${length} characters; the limit is ${limit}. Shorten it, then send.`);
    return;
  }
  const conv = current ?? startConversation(text);
  const turn = localId();
  const question = { role: 'user', text, turn };
  const answer = { role: 'assistant', text: '', citations: [], turn };
  conv.messages.push(question, answer);
  store.save(conv);
  sessionStorage.setItem(ACTIVE_KEY, conv.id);
  renderList();

  query.value = '';
  autoGrow();
  keepDraft();
  emptyHint.hidden = true;
  const view = createAnswerView(answer);
  messages.append(renderUserMessage(question), view.root);
  view.startProgress();
  scrollToEnd();
  await runAnswer(conv, view, [question, answer]);
}

/** A new conversation; the turns of one deleted elsewhere while this tab answered (see keepTurn) leave the screen. */
function startConversation(text) {
  current = store.create(text);
  messages.replaceChildren(emptyHint);
  return current;
}

async function runAnswer(conv, view, turn) {
  const text = turn[0].text;
  const controller = new AbortController();
  setRunning(controller);
  answering = { conv, turn };
  announce('Generating answer…');
  let finished = false; // a done or error event arrived

  const fail = (code, message) => {
    view.apply('error', { code, message });
    const again = offerAgain(text) ? ' The question is back in the box, to send again.' : '';
    announce(`Error: ${message}${again}`);
  };

  try {
    await streamAnswer(conv, text, controller.signal, (type, data) => {
      const follow = nearBottom();
      if (type === 'retrieval' && data.restarted) view.restart(); // written anew, sent whole: replaces the part
      if (type === 'error') {
        finished = true;
        fail(data.code, data.message || 'The answer failed.');
      } else {
        view.apply(type, data);
      }
      // Known from the first event, so a follow-up after Stop stays in this conversation.
      if (type === 'retrieval' && data.conversation_id) conv.conversationId = data.conversation_id;
      if (type === 'done') {
        finished = true;
        if (data.conversation_id) conv.conversationId = data.conversation_id;
        announce(data.cached ? 'Answer complete (cached).' : 'Answer complete.');
      }
      if (follow) scrollToEnd();
    });
    if (!finished) fail('incomplete', 'The connection closed before the answer was complete.');
  } catch (err) {
    if (err.name === 'AbortError') {
      view.markStopped();
      announce('Stopped.');
    } else if (!leaving) {
      fail(err.code || 'network', err instanceof TypeError ? 'Cannot reach the server.' : err.message);
    }
  } finally {
    view.finish();
    setRunning(null);
    answering = null;
    keepTurn(conv, turn);
    renderList();
  }
}

/** The waits (ms) before each attempt to continue an answer whose connection broke. */
const RESUME_WAITS = [500, 1500, 4000];

/** A failure worth another attempt to continue the answer: the connection broke, or the gateway cannot be reached
 *  for now (it is restarting). */
const resumable = (err) => err.code === 'connection_lost' || err instanceof TypeError || [502, 503, 504].includes(err.status);

/** Stream the answer to `text`, calling onEvent(type, data) for each event. A connection lost mid-answer is taken up
 *  again after the last event that came (Last-Event-ID): the gateway sends the rest of the same answer, or one
 *  written anew whole, its retrieval event marked restarted. The conversation id learnt from the first events goes
 *  with it, so the server holds the question once. A try that fails for good, or the last of RESUME_WAITS.length,
 *  ends it with an error saying why; Stop ends it (AbortError) whatever it was doing. */
async function streamAnswer(conv, text, signal, onEvent) {
  let lastEventId = '';
  let lost = null;
  for (let attempt = 0; ; attempt += 1) {
    const body = { query: text };
    if (conv.conversationId) body.conversation_id = conv.conversationId;
    try {
      await streamSSE('/api/v1/chat', body, {
        signal, lastEventId, onEvent(type, data, id) { lastEventId = id || lastEventId; onEvent(type, data); },
      });
      return;
    } catch (err) {
      // A try stopped while it waited for the server fails with an AbortError too, not with the loss it repairs.
      if (signal.aborted) throw new DOMException('Stopped', 'AbortError');
      if (leaving || (!lost && (err.code !== 'connection_lost' || !lastEventId))) throw lost ?? err;
      if (lost && (!resumable(err) || attempt >= RESUME_WAITS.length)) throw notContinued(err);
      if (!lost) announce('The connection was lost; continuing the answer…');
      lost ??= err;
      await pause(RESUME_WAITS[attempt], signal);
    }
  }
}

/** The error of an answer whose lost connection could not be taken up again, with why the last try failed. */
function notContinued(err) {
  const why = err instanceof TypeError ? 'the server cannot be reached' : err.message;
  return new ApiError(`The connection was lost during the answer and could not be restored (${why}).`,
    { code: 'connection_lost', status: err.status ?? 0 });
}

/** Wait ms, or reject with an AbortError as soon as `signal` fires (Stop). */
function pause(ms, signal) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener('abort', () => {
      clearTimeout(timer);
      reject(new DOMException('Stopped', 'AbortError'));
    }, { once: true });
  });
}

/** A question whose answer failed (the token expired, the service was down, the connection was lost for good)
 *  goes back into the composer, when that is empty, to be sent again once the cause is dealt with; what arrived of
 *  the answer stays on screen. Returns whether it did. */
function offerAgain(text) {
  if (query.value) return false;
  query.value = text;
  autoGrow();
  keepDraft();
  return true;
}

/** Keep what arrived (also a partial answer) by adding this turn to the stored conversation rather than saving
 *  this tab's copy over it: another tab may have asked in it meanwhile, and its turn is shown here now. A
 *  conversation deleted meanwhile (in another tab; here, switching away stopped the answer) is not brought back:
 *  the answer stays on screen, and the next question here begins a new conversation. */
function keepTurn(conv, turn) {
  const saved = store.saveTurn(conv, turn);
  if (conv !== current || leaving) return;
  if (saved) {
    const shown = current.messages.length;
    current = saved;
    if (saved.messages.length !== shown) renderMessages(); // another tab's turns, in the order asked
    return;
  }
  current = null;
  sessionStorage.removeItem(ACTIVE_KEY);
  announce('This conversation was deleted in another tab: the answer is shown here, not kept.');
}

/** Swap Send and Stop, keeping keyboard focus on whichever is shown. */
function setRunning(controller) {
  running = controller;
  const hadFocus = document.activeElement === sendButton || document.activeElement === stopButton;
  sendButton.hidden = !!controller;
  stopButton.hidden = !controller;
  if (hadFocus) (controller ? stopButton : sendButton).focus();
}

function nearBottom() {
  return window.innerHeight + window.scrollY >= document.documentElement.scrollHeight - 120;
}

function scrollToEnd() {
  window.scrollTo({ top: document.documentElement.scrollHeight });
}

/** Another tab saved or deleted conversations: show its newer copy of the open one (unless an answer is
 *  arriving here), so that the next question here does not save over that tab's turns. */
function takeExternalChange() {
  if (current && !running) {
    const saved = store.find(current.id);
    if (!saved && current.messages.length) {
      openConversation(null); // deleted there
      return;
    }
    if (saved && saved.updated > current.updated) {
      current = saved;
      renderMessages();
    }
  }
  renderList();
}

function openConversation(id) {
  // One answer at a time: switching away stops it (its partial text is kept).
  running?.abort();
  current = id ? store.find(id) : null;
  clearStatus();
  if (current) sessionStorage.setItem(ACTIVE_KEY, current.id);
  else sessionStorage.removeItem(ACTIVE_KEY);
  renderMessages();
  renderList();
  if (current) refreshSources(current.id);
}

/** Bring the saved conversation `id` to what the signed-in reader may read now (their access to a cited document
 *  changed, or it was deleted), asked of the server each time it is opened. The server's copy (GET
 *  /api/v1/conversations/{id}, its last turns until LIKEOPT_SESSION_TTL_S passes) decides for the answers it holds:
 *  it withholds a passage, and shows it again once access is given back. For the rest, which only this browser
 *  holds, the cited documents the reader may no longer read are asked (GET /api/v1/documents?ids=…), and their
 *  passages and the answers citing them are forgotten. What could not be checked is left as it is, and said. */
async function refreshSources(id) {
  const conv = store.find(id);
  if (!conv || !store.hasSources(conv)) return;
  const turns = await heldTurns(conv.conversationId);
  const check = await readableOf(store.citedDocuments(conv, store.heldAnswers(conv, turns)));
  const refreshed = store.refreshStored(id, turns, check.readable, check.decided);
  if (current?.id !== id || running) return;
  if (refreshed) {
    current = refreshed.conv;
    renderMessages();
  }
  const said = [];
  if (refreshed?.withdrew) said.push('Some sources of this conversation are no longer available to you.');
  if (check.failure) {
    said.push(`${check.undecided} of its sources could not be checked (${check.failure.message}); `
      + 'they are checked again when it is next opened.');
  }
  if (said.length) announce(said.join(' '));
}

/** The turns the server holds of a conversation: none when it holds none (expired, deleted, never answered) or
 *  cannot say now. */
async function heldTurns(conversationId) {
  if (!conversationId) return [];
  try {
    return (await requestJSON(`/api/v1/conversations/${encodeURIComponent(conversationId)}`)).turns;
  } catch {
    return [];
  }
}

/** Most characters in one check's address: an id of 512 characters (the longest stored), in 4-byte UTF-8 and
 *  percent-encoded, fits alone, and it stays far below what Envoy takes of a request's headers (60 KiB, its default
 *  max_request_headers_kb) with the token beside it. */
const MAX_CHECK_URL = 8000;
/** Most ids in one check, which the server takes up to 1,000 of. */
const IDS_PER_CHECK = 100;
const CHECK_PATH = '/api/v1/documents?';

const checkUrl = (ids) => CHECK_PATH
  + new URLSearchParams([['limit', String(ids.length)], ...ids.map((doc) => ['ids', doc])]);

/** `ids` cut into checks of at most IDS_PER_CHECK ids and MAX_CHECK_URL characters each. */
function checkBatches(ids) {
  const batches = [];
  let length = Infinity; // of the last batch's address: none yet
  for (const id of ids) {
    const cost = new URLSearchParams([['ids', id]]).toString().length + 1;
    if (length + cost > MAX_CHECK_URL || batches.at(-1).length >= IDS_PER_CHECK) {
      batches.push([id]);
      length = checkUrl([id]).length;
    } else {
      batches.at(-1).push(id);
      length += cost;
    }
  }
  return batches;
}

/** Which of `ids` the reader may read: `readable` of those `decided`, each check on its own, so one that fails
 *  leaves the others' answers standing; `undecided` counts the ids of failed checks, `failure` is the first error. */
async function readableOf(ids) {
  const check = { readable: new Set(), decided: new Set(), undecided: 0, failure: null };
  for (const batch of checkBatches(ids)) await checkBatch(batch, check);
  return check;
}

/** A refusal of the ids asked rather than of the caller or of the moment: a malformed id (400, 422) or too many at
 *  once (413, 414, 431). Asking again later would get it again. */
const refusesIds = (err) => [400, 413, 414, 422, 431].includes(err.status);

/** Ask about one batch of ids, into `check`. A batch refused for its ids is asked again in halves, down to one id,
 *  which the server will then not say may be read: it names no document the reader may read. */
async function checkBatch(batch, check) {
  try {
    for (const doc of (await requestJSON(checkUrl(batch))).documents) check.readable.add(doc.id);
    for (const doc of batch) check.decided.add(doc);
  } catch (err) {
    if (!refusesIds(err)) {
      check.failure ??= err;
      check.undecided += batch.length;
    } else if (batch.length === 1) {
      check.decided.add(batch[0]);
    } else {
      const half = Math.ceil(batch.length / 2);
      await checkBatch(batch.slice(0, half), check);
      await checkBatch(batch.slice(half), check);
    }
  }
}

function renderMessages() {
  const saved = current?.messages ?? [];
  emptyHint.hidden = saved.length > 0;
  messages.replaceChildren(emptyHint);
  for (const msg of saved) {
    if (msg.role === 'user') {
      messages.append(renderUserMessage(msg));
    } else {
      const view = createAnswerView(msg);
      view.restore();
      messages.append(view.root);
    }
  }
  scrollToEnd();
}

function renderList() {
  const all = store.loadAll();
  // Rebuilding replaces the buttons: keep keyboard focus on the same button of the same conversation.
  const focused = list.contains(document.activeElement) ? document.activeElement : null;
  const focusedId = focused?.closest('.conversation')?.dataset.id;
  const focusedButton = focused?.classList.contains('conversation-delete') ? '.conversation-delete' : '.conversation-open';
  byId('conversation-empty').hidden = all.length > 0;
  list.replaceChildren(...all.map((conv) => el('li', { class: 'conversation', 'data-id': conv.id },
    el('button', {
      type: 'button', class: 'conversation-open', title: conv.title, dir: 'auto',
      'aria-current': conv.id === current?.id ? 'true' : null,
      onclick: () => selectConversation(conv.id),
    }, conv.title || 'Untitled'),
    deleteButton(conv))));
  if (focusedId) {
    const again = [...list.querySelectorAll('.conversation')].find((li) => li.dataset.id === focusedId);
    again?.querySelector(focusedButton)?.focus({ preventScroll: true }); // where it was: the page stays where it is
  }
}

function selectConversation(id) {
  // Re-opening the open conversation would reload a stale copy of an answer in progress.
  if (id !== current?.id) openConversation(id);
  setSidebarOpen(false);
  // The list was re-rendered, so the clicked button is gone. On a wide screen focus stays on the opened
  // conversation. On a phone (or zoomed in) the list folds away above the conversation: focus goes to the question
  // box, always on screen, as the toggle up there would scroll the page back from the latest turn to the top.
  const phone = sidebarToggle.offsetParent !== null;
  (phone ? query : list.querySelector('[aria-current="true"]'))?.focus();
}

/** Deleting a conversation deletes the server's copy too, for good: its button asks for a second press. */
function deleteButton(conv) {
  const title = conv.title || 'Untitled';
  return confirmFirst(el('button', { type: 'button', class: 'conversation-delete', title: 'Delete conversation' }), {
    key: `conversation:${conv.id}`,
    idle: ['×', `Delete conversation: ${title}`], armed: ['Delete?', `Confirm delete conversation: ${title}`],
    asked: `Press again to delete “${title}”.`, kept: `Kept “${title}”: not deleted.`, say: announce,
    action: () => deleteConversation(conv.id),
  });
}

function deleteConversation(id) {
  const index = store.loadAll().findIndex((c) => c.id === id);
  forgetOnServer(store.find(id)?.conversationId);
  store.remove(id);
  if (id === current?.id) openConversation(null);
  else renderList();
  // The focused button is gone; move focus to its neighbour so keyboard users keep their place.
  const buttons = list.querySelectorAll('.conversation-delete');
  (buttons[Math.min(index, buttons.length - 1)] ?? byId('new-chat')).focus();
  announce('Conversation deleted.');
}

/** The server keeps a conversation's turns for follow-ups; deleting it here deletes them there too. */
async function forgetOnServer(conversationId) {
  if (!conversationId) return; // never answered: the server holds nothing
  try {
    await requestJSON(`/api/v1/conversations/${encodeURIComponent(conversationId)}`, { method: 'DELETE' });
  } catch (err) {
    // 404: it expired on the server already.
    if (err.status !== 404) announce(`Deleted in this browser; the server kept it: ${err.message}`);
  }
}

/** The sidebar is collapsible at phone width only; CSS ignores the state on wide screens. */
function setSidebarOpen(open) {
  sidebarToggle.setAttribute('aria-expanded', String(open));
  sidebarPanel.classList.toggle('open', open);
}
