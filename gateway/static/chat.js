// The chat view: composer, streaming answers, and the saved-conversation sidebar.

import { el, byId, localId } from './dom.js';
import { requestJSON } from './api.js';
import { streamSSE } from './sse.js';
import * as store from './conversations.js';
import { renderUserMessage, createAnswerView } from './message.js';

// Per browser tab, so a reload reopens the conversation that was open.
const ACTIVE_KEY = 'likeopt.activeConversation';

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
  query.addEventListener('input', autoGrow);
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
}

function onComposerKey(e) {
  // Enter also confirms IME composition (Korean, Japanese…); that Enter must not send.
  // Safari reports it only through keyCode 229.
  if (e.key !== 'Enter' || e.shiftKey || e.isComposing || e.keyCode === 229) return;
  e.preventDefault();
  send();
}

function autoGrow() {
  query.style.height = 'auto';
  query.style.height = `${Math.min(query.scrollHeight, 240)}px`;
}

function announce(text) {
  // Clear first so that the same message twice in a row is still read out.
  statusLine.textContent = '';
  setTimeout(() => { statusLine.textContent = text; }, 50);
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
  const body = { query: text };
  if (conv.conversationId) body.conversation_id = conv.conversationId;
  let finished = false; // a done or error event arrived

  const fail = (code, message) => {
    view.apply('error', { code, message });
    announce(`Error: ${message}`);
  };

  try {
    await streamSSE('/api/v1/chat', body, {
      signal: controller.signal,
      onEvent(type, data) {
        const follow = nearBottom();
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
      },
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
  if (current) sessionStorage.setItem(ACTIVE_KEY, current.id);
  else sessionStorage.removeItem(ACTIVE_KEY);
  renderMessages();
  renderList();
  if (current) withdrawUnreadable(current.id);
}

/** Ids per check of which cited documents are still readable: a URL of a few kilobytes at most. */
const IDS_PER_CHECK = 100;

/** Passages of documents the signed-in reader may no longer read (their access changed, or they were deleted)
 *  leave the saved conversation and show as no longer available. Asked of the server each time a conversation
 *  is opened, as this browser's copy outlives the server's: GET /api/v1/documents?ids=… lists those of the cited
 *  documents the reader may read. A failed check changes nothing and is asked again at the next opening. */
async function withdrawUnreadable(id) {
  const ids = store.citedDocuments(store.find(id) ?? { messages: [] });
  if (!ids.length) return;
  const readable = new Set();
  try {
    for (let i = 0; i < ids.length; i += IDS_PER_CHECK) {
      const batch = ids.slice(i, i + IDS_PER_CHECK);
      const query = new URLSearchParams([['limit', String(batch.length)], ...batch.map((doc) => ['ids', doc])]);
      for (const doc of (await requestJSON(`/api/v1/documents?${query}`)).documents) readable.add(doc.id);
    }
  } catch {
    return;
  }
  const saved = store.withdrawStored(id, readable);
  if (saved && current?.id === id && !running) {
    current = saved;
    renderMessages();
    announce('Some sources of this conversation are no longer available to you.');
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
      type: 'button', class: 'conversation-open', title: conv.title,
      'aria-current': conv.id === current?.id ? 'true' : null,
      onclick: () => selectConversation(conv.id),
    }, conv.title || 'Untitled'),
    el('button', {
      type: 'button', class: 'conversation-delete', title: 'Delete conversation',
      'aria-label': `Delete conversation: ${conv.title}`,
      onclick: () => deleteConversation(conv.id),
    }, '×'))));
  if (focusedId) {
    const again = [...list.querySelectorAll('.conversation')].find((li) => li.dataset.id === focusedId);
    again?.querySelector(focusedButton)?.focus();
  }
}

function selectConversation(id) {
  // Re-opening the open conversation would reload a stale copy of an answer in progress.
  if (id !== current?.id) openConversation(id);
  setSidebarOpen(false);
  // The list was re-rendered, so the clicked button is gone. Keep focus near where it was:
  // on the toggle when the sidebar collapsed (phone), otherwise on the opened conversation.
  const phone = sidebarToggle.offsetParent !== null;
  (phone ? sidebarToggle : list.querySelector('[aria-current="true"]'))?.focus();
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
