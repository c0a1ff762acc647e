// Sign-in for LIKEOPT_AUTH=jwt. The identity provider hands over a token (a link ending in #token=… or
// #access_token=…, which api.js takes and removes from the address bar at once) or the user pastes one; it is
// kept for this tab only (sessionStorage) and sent with every call. The header shows who is signed in; any 401
// asks again.

import { el, byId } from './dom.js';
import { JWT_MODE, getToken, setToken, requestJSON, handoverRefused } from './api.js';

// Set by signing in, for the page that reload brings: it gives keyboard focus back to the question box, where a
// question refused for the expired token waits to be sent again.
const SIGNED_IN_KEY = 'likeopt.signedIn';

/** Whether this page was loaded by signing in (asked once: the next load is not). */
function takeSignedIn() {
  const signedIn = sessionStorage.getItem(SIGNED_IN_KEY) !== null;
  sessionStorage.removeItem(SIGNED_IN_KEY);
  return signedIn;
}

function buildDialog() {
  const input = el('textarea', { id: 'signin-token', rows: 4, required: true, autocomplete: 'off',
    spellcheck: 'false', placeholder: 'eyJhbGciOi…', 'aria-describedby': 'signin-reason' });
  const reason = el('p', { id: 'signin-reason', class: 'muted small', role: 'status' });
  const form = el('form', { id: 'signin-form' },
    el('label', { for: 'signin-token' }, 'Bearer token from your identity provider'), input,
    el('button', { class: 'button primary', type: 'submit', id: 'signin-submit' }, 'Sign in'));
  const dialog = el('dialog', { id: 'signin-dialog', 'aria-labelledby': 'signin-title' },
    el('div', { class: 'dialog-body' }, el('h2', { id: 'signin-title' }, 'Sign in to Like-Opt'), reason, form));
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    setToken(input.value.trim());
    sessionStorage.setItem(SIGNED_IN_KEY, '1'); // after setToken, which forgets another person's entries
    location.reload(); // every view fetches again, as the one now signed in
  });
  // A token is one line: Enter signs in, as it sends a question in the composer, rather than adding a line break.
  input.addEventListener('keydown', (e) => {
    if (e.key !== 'Enter' || e.shiftKey || e.isComposing || e.keyCode === 229) return;
    e.preventDefault();
    form.requestSubmit();
  });
  dialog.addEventListener('cancel', (e) => e.preventDefault()); // nothing works without a token
  document.body.append(dialog);
  return { dialog, reason, input };
}

function buildIdentity() {
  const who = el('span', { id: 'signed-in-as', class: 'muted small' });
  const out = el('button', { type: 'button', class: 'button', id: 'sign-out' }, 'Sign out');
  out.addEventListener('click', () => { setToken(''); location.reload(); });
  const box = el('div', { class: 'identity', hidden: true }, who, out);
  document.querySelector('.app-header').append(box);
  return { box, who };
}

export async function initSignIn() {
  if (!JWT_MODE) return;
  const signedIn = takeSignedIn();
  const { dialog, reason, input } = buildDialog();
  const identity = buildIdentity();
  const ask = (why) => {
    reason.textContent = why;
    if (!dialog.open) dialog.showModal();
    input.focus();
  };
  window.addEventListener('likeopt:signin', (e) => ask(`Your token was refused: ${e.detail}`));
  if (handoverRefused || !getToken()) {
    ask(handoverRefused || 'Paste a token, or follow your identity provider\'s link to Like-Opt.');
    return;
  }
  // The chat on screen: the question box. A token refused after all brings the sign-in back, which takes focus.
  if (signedIn) document.querySelector('#view-chat:not([hidden]) #query')?.focus();
  try {
    const me = await requestJSON('/api/v1/whoami');
    const p = me.principal || {};
    identity.who.textContent = `Signed in as ${p.subject}` + (p.tenant ? ` · ${p.tenant}` : '')
      + (me.writer ? ' · writer' : '');
    identity.box.hidden = false;
  } catch (err) {
    if (err.status !== 401) byId('signed-in-as').textContent = `Could not check the token: ${err.message}`;
  }
}

initSignIn();
