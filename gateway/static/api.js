// JSON calls to the gateway. Error bodies are {"error": {"code", "message"}}; anything else (a proxy's own
// plain-text page) is reported with its status line and what that status means, never with the page's words.

const KEY_STORAGE = 'likeopt.apiKey';
const TOKEN_STORAGE = 'likeopt.token';

/** LIKEOPT_AUTH=jwt (from /static/config.js): every API call carries the signed-in user's token. */
export const JWT_MODE = window.LIKEOPT_AUTH === 'jwt';

export class ApiError extends Error {
  constructor(message, { code = 'error', status = 0 } = {}) {
    super(message);
    this.code = code;
    this.status = status;
  }
}

export function getApiKey() {
  return sessionStorage.getItem(KEY_STORAGE) || '';
}

export function setApiKey(key) {
  if (key) sessionStorage.setItem(KEY_STORAGE, key);
  else sessionStorage.removeItem(KEY_STORAGE);
}

/** Why a token handed over in the address was not taken ('' when none was refused). */
export let handoverRefused = '';

/** A token handed over after the address's '#' (…/#token=…, or an OAuth implicit-flow reply's #access_token=…)
 *  never reaches a server. It is taken at once, before anything reads who is signed in, and removed from the
 *  address bar with the rest of the reply; a view named beside it (#documents&token=…) stays. A token in the
 *  query (?token=…) has already gone to the server and whatever records addresses on the way (traces, proxies'
 *  logs): it is removed and not used. Returns whether a token was taken. */
function takeHandedOverToken() {
  const url = new URL(location.href);
  const reply = new URLSearchParams(url.hash.slice(1));
  const token = (reply.get('access_token') || reply.get('token') || '').trim();
  const inQuery = url.searchParams.has('token');
  if (!token && !inQuery) return false;
  if (inQuery) {
    url.searchParams.delete('token');
    handoverRefused = 'The link carried the token after "?", which sends it to the server and its logs, so it was '
      + 'not used: a link must carry it after "#" (…/#token=…). Sign in with a new token.';
  }
  let hash = url.hash;
  if (token) {
    setToken(token);
    const view = [...reply.entries()].find(([, value]) => !value);
    hash = view ? `#${view[0]}` : '';
  }
  history.replaceState(history.state, '', url.pathname + url.search + hash);
  return Boolean(token);
}

export function getToken() {
  return sessionStorage.getItem(TOKEN_STORAGE) || '';
}

/** Keep `token` (or sign out with ''). When it names someone else than the tab's last token did, what this tab
 *  kept for that person goes first (the API key they entered, the conversation they had open): the next person at
 *  a shared browser must not write, or read feedback, with the previous one's key. */
export function setToken(token) {
  const before = signedInAs();
  if (token) sessionStorage.setItem(TOKEN_STORAGE, token);
  else sessionStorage.removeItem(TOKEN_STORAGE);
  if (signedInAs() !== before || !token) forgetPersonalSession();
}

/** Every 'likeopt.' entry of this tab's sessionStorage but the token: all of it belongs to whoever was signed in. */
function forgetPersonalSession() {
  const personal = Object.keys(sessionStorage).filter((k) => k.startsWith('likeopt.') && k !== TOKEN_STORAGE);
  for (const key of personal) sessionStorage.removeItem(key);
}

if (JWT_MODE) {
  takeHandedOverToken();
  // A link followed from this very page changes only the '#': no reload, so the new person's token is read here
  // and the page starts again as them.
  window.addEventListener('hashchange', () => { if (takeHandedOverToken()) location.reload(); });
}

/** Who the token names (issuer and subject, read from it unverified: only to keep each person's browser-side
 *  data apart; the server trusts nothing but what Envoy verified); '' without a token. */
export function signedInAs() {
  const token = JWT_MODE ? getToken() : '';
  try {
    const payload = JSON.parse(atob(token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/')));
    return `${payload.iss ?? ''}|${payload.sub ?? ''}`;
  } catch {
    return '';
  }
}

/** Whether a call sends the API key rather than the signed-in token: always without a token; signed in, only
 *  writes and administration (`admin`) once a key was entered, as a token without the writer role cannot. */
export function sendsKey(admin = false) {
  return !(JWT_MODE && getToken()) || (admin && Boolean(getApiKey()));
}

export function authHeaders({ admin = false } = {}) {
  const credential = sendsKey(admin) ? getApiKey() : getToken();
  return credential ? { Authorization: `Bearer ${credential}` } : {};
}

// Envoy's own words for a service it could not reach or that took too long ('upstream connect error or
// disconnect/reset before headers…', 'no healthy upstream'): JSON in the error contract when the request sent
// JSON, plain text otherwise. They mean nothing to a reader; the status says it better.
const PROXY_WORDS = /^(?:upstream\b|no healthy upstream)/i;
const UNREACHABLE = 'the service is restarting or unreachable; try again';
const STATUS_WORDS = {
  429: ['Too Many Requests', 'too many requests; wait a moment and try again'],
  502: ['Bad Gateway', UNREACHABLE],
  503: ['Service Unavailable', UNREACHABLE],
  504: ['Gateway Timeout', 'the service took too long to answer; try again'],
};

/** The status line and what it means ('503 Service Unavailable: the service is restarting…'). */
function statusMessage(status, statusText) {
  const [reason, meaning] = STATUS_WORDS[status] ?? ['', ''];
  const line = `${status} ${statusText || reason}`.trim(); // HTTP/2 responses have no status text
  return meaning ? `${line}: ${meaning}` : line;
}

/** Build an ApiError from a failed response's body text (`keyed`: the call sent the API key, not the token). */
export function errorFromBody(status, statusText, bodyText, keyed = !JWT_MODE) {
  let message = '';
  let code = 'http_' + status;
  let err = null;
  try {
    err = JSON.parse(bodyText)?.error;
  } catch {
    // not the error contract: the status line speaks for it
  }
  if (err?.message && !PROXY_WORDS.test(err.message)) message = String(err.message);
  if (err?.message) code = err.code || code;
  message ||= statusMessage(status, statusText);
  if (JWT_MODE && status === 401 && !keyed) {
    window.dispatchEvent(new CustomEvent('likeopt:signin', { detail: message })); // signin.js asks again
    message += ' (sign in again)';
  } else if ((status === 401 || status === 403) && !getApiKey()) {
    message += ' (enter the API key on the Documents tab)';
  }
  return new ApiError(message, { code, status });
}

export async function errorFromResponse(res, keyed = !JWT_MODE) {
  return errorFromBody(res.status, res.statusText, await res.text().catch(() => ''), keyed);
}

/**
 * fetch + JSON with the error contract applied. The API key, when one was entered, goes
 * with every call: writes need it, and reads too when LIKEOPT_READS_NEED_KEY is set.
 */
export async function requestJSON(url, { method = 'GET', body, signal, admin = false } = {}) {
  const headers = { Accept: 'application/json', ...authHeaders({ admin }) };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const res = await fetch(url, {
    method, headers, signal, body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (!res.ok) throw await errorFromResponse(res, sendsKey(admin));
  return res.json();
}
