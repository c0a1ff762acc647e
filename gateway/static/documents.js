// The documents view: API key, uploads, index status, the list of documents, search and delete.

import { el, byId, formatMs, formatNum, isNum, DASH } from './dom.js';
import { confirmFirst } from './confirm.js';
import { ApiError, requestJSON, getApiKey, setApiKey, authHeaders, errorFromBody, sendsKey } from './api.js';

/** The file types the server reads (SUPPORTED in likeopt/runtime/loaders/formats.py), from /static/config.js. */
const ACCEPTED = window.LIKEOPT_FILE_TYPES || [];
const NAMED = window.LIKEOPT_FILE_NAMES || [];
/** Names read with any suffix after them too (NAMED_VARIANTS: Dockerfile.dev, Makefile.am). */
const VARIANTS = window.LIKEOPT_FILE_NAME_VARIANTS || [];
const LIST_PAGE = 50;

const progress = byId('upload-progress');
const uploadStatus = byId('upload-status');
const skippedList = byId('upload-skipped');
const changes = byId('upload-changes');
const changedList = byId('upload-changed');
const searchStatus = byId('doc-search-status');
const searchResults = byId('doc-search-results');
const docList = byId('doc-list');
const docListStatus = byId('doc-list-status');
const docListMore = byId('doc-list-more');

let uploading = false;
let nextAfterId = '';
let listTotal = 0; // documents the caller may read, as the last page said
let listTicket = 0; // the newest listing asked for: the answer to an older one is dropped
let listInFlight = false;

export function initDocuments() {
  const keyInput = byId('api-key');
  keyInput.value = getApiKey();
  keyInput.addEventListener('input', () => setApiKey(keyInput.value.trim()));

  // No "accept" filter on the picker: its tokens are suffixes or media types only (HTML's file input), so it would
  // grey out a Dockerfile or a LICENSE, which the server reads by name; isAccepted reports what is not sent.
  const fileInput = byId('file-input');
  byId('file-types').textContent = [...ACCEPTED, ...NAMED, ...VARIANTS.map((name) => `${name}.*`)].join(' ');
  fileInput.addEventListener('change', () => {
    uploadFiles([...fileInput.files]);
    fileInput.value = ''; // so choosing the same file again still fires "change"
  });
  byId('choose-files').addEventListener('click', () => fileInput.click());
  initDropZone(byId('drop-zone'));

  byId('index-refresh').addEventListener('click', refreshView);
  docListMore.addEventListener('click', () => loadDocuments(false));
  byId('delete-form').addEventListener('submit', onDeleteSubmit);
  byId('doc-search-form').addEventListener('submit', onSearch);
}

/** Called whenever the view is shown. */
export function showDocuments() {
  refreshView();
}

/** The index status and the first page of documents, read again. */
function refreshView() {
  refreshIndex();
  loadDocuments(true);
}

const plural = (n, word) => `${formatNum(n)} ${word}${n === 1 ? '' : 's'}`;

// ---- uploads ---------------------------------------------------------------------------

function initDropZone(zone) {
  const hasFiles = (e) => e.dataTransfer?.types.includes('Files');
  // A file dropped next to the zone would make the browser navigate away to open it.
  for (const type of ['dragover', 'drop']) {
    window.addEventListener(type, (e) => { if (hasFiles(e)) e.preventDefault(); });
  }
  // dragenter/dragover must be cancelled for "drop" to fire on the zone.
  for (const type of ['dragenter', 'dragover']) {
    zone.addEventListener(type, (e) => {
      if (!hasFiles(e)) return;
      e.preventDefault();
      zone.classList.add('dragging');
    });
  }
  zone.addEventListener('dragleave', (e) => {
    if (!zone.contains(e.relatedTarget)) zone.classList.remove('dragging');
  });
  zone.addEventListener('drop', (e) => {
    e.preventDefault();
    zone.classList.remove('dragging');
    uploadFiles([...e.dataTransfer.files]);
  });
}

/** Sent: a file of a type the server reads by its name (its extension, its whole name: .gitignore, Dockerfile, or
 *  the name it is a variant of: Dockerfile.dev), or one with no extension, which the server reads by its bytes (a
 *  PDF or an Office file named "report"). */
const isAccepted = (file) =>
  !/\.[^.]+$/.test(file.name) ||
  NAMED.includes(file.name.toLowerCase()) ||
  VARIANTS.includes(file.name.toLowerCase().split('.')[0]) ||
  ACCEPTED.some((ext) => file.name.toLowerCase().endsWith(ext));

async function uploadFiles(files) {
  if (!files.length) return;
  if (uploading) {
    showUploadResult('Wait for the current upload to finish.', []);
    return;
  }
  // Files the server cannot read are not worth sending; report them like server-side skips.
  const accepted = files.filter(isAccepted);
  const rejected = files.filter((f) => !isAccepted(f)).map((f) => ({ id: f.name, reason: 'unsupported file type' }));
  if (!accepted.length) {
    showUploadResult('No supported files to upload.', rejected, true);
    return;
  }

  const { batches, tooLarge } = cutBatches(accepted);
  const refused = [...rejected, ...tooLarge.map((f) => ({ id: f.name, reason: `over the ${mib(maxBytes())} one upload may hold` }))];
  if (!batches.length) {
    showUploadResult('No file small enough to upload.', refused, true);
    return;
  }
  uploading = true;
  setProgress(0);
  showUploadResult(`Uploading ${plural(accepted.length - tooLarge.length, 'file')}…`, []);
  try {
    const result = await postInBatches(batches, setProgress);
    const listed = [...refused, ...result.skipped, ...result.failed];
    const summary = uploadSummary(result, batches.length, listed.length);
    showUploadResult(summary, listed, result.failed.length > 0, result.changes);
  } finally {
    uploading = false;
    progress.hidden = true;
    refreshView(); // whatever a batch added is listed, also when another failed
  }
}

/** What was added, and what was not: the failed uploads' reason; every file not added is listed with its own, and
 *  every stored document whose readers the upload changed in a list of its own. Read out, this says how many of
 *  those now have more readers, which the list marks. */
function uploadSummary(result, batchCount, listedCount) {
  const failed = result.failedBatches;
  const listed = listedCount ? ` Skipped ${listedCount}:` : '';
  const widened = result.changes.filter((c) => c.widened).length;
  const more = widened ? ` (more readers now: ${formatNum(widened)})` : '';
  const changed = result.changes.length
    ? ` Changed who may read ${plural(result.changes.length, 'document')}${more}.` : '';
  if (failed === batchCount) return `Upload failed: ${result.error}${listed}`;
  return `Added or updated ${plural(result.upserted, 'document')} (${plural(result.chunks, 'chunk')}). ` +
    `Index version ${result.index_version ?? DASH}.${failed ? ` ${failed} of ${batchCount} uploads failed.` : ''}` +
    `${changed}${listed}`;
}

/** A stored document the upload gave other readers (the server words both lists); more readers now is said in
 *  words, not by colour alone. */
function changeItem(change) {
  const item = el('li', {}, el('code', { text: change.id ?? DASH }), `: from ${change.before} to ${change.after}`);
  if (change.widened) item.append(' ', el('strong', { class: 'badge warn widened', text: 'more readers now' }));
  return item;
}

/** `fraction` 0..1, or null once the bytes are sent and the server is indexing. */
function setProgress(fraction) {
  progress.hidden = false;
  if (fraction === null) {
    progress.removeAttribute('value'); // indeterminate
    uploadStatus.textContent = 'Indexing…';
  } else {
    progress.value = fraction;
  }
}

/** The most bytes a request may carry (LIKEOPT_MAX_REQUEST_BYTES, from /static/config.js): a larger one gets 413. */
const maxBytes = () => window.LIKEOPT_MAX_REQUEST_BYTES || Infinity;
const mib = (bytes) => `${+(bytes / 1048576).toFixed(1)} MiB`;
// What multipart adds: per file its part's headers (its name, escaped, in them), per request the closing boundary.
const partBytes = (file) => file.size + 512 + 3 * new TextEncoder().encode(file.name).length;
const BODY_BYTES = 512;

/** Batches the server takes whole: at most LIKEOPT_MAX_UPLOAD_FILES files and maxBytes() each, in the order given;
 *  a file no request can carry is in tooLarge, never sent. */
function cutBatches(files) {
  const maxFiles = window.LIKEOPT_MAX_UPLOAD_FILES || files.length;
  const batches = [];
  const tooLarge = [];
  let bytes = Infinity; // of the last batch: none yet
  for (const file of files) {
    const size = partBytes(file);
    if (BODY_BYTES + size > maxBytes()) tooLarge.push(file);
    else if (bytes + size > maxBytes() || batches.at(-1).length >= maxFiles) {
      batches.push([file]);
      bytes = BODY_BYTES + size;
    } else {
      batches.at(-1).push(file);
      bytes += size;
    }
  }
  return { batches, tooLarge };
}

/**
 * Send the batches one after another and add their results up. A batch refused (413, 401, unreachable…) does not
 * stop the rest: its files are in `failed` with the reason, and the first reason is `error`.
 */
async function postInBatches(batches, onProgress) {
  const total = {
    upserted: 0, chunks: 0, index_version: undefined, skipped: [], changes: [], failed: [], failedBatches: 0, error: '',
  };
  const last = batches.length - 1;
  // A batch's fraction as the whole upload's; null (indexing) only once the last batch is sent.
  const overall = (n) => (f) => onProgress(f !== null ? (n + f) / batches.length : n === last ? null : (n + 1) / batches.length);
  for (const [n, batch] of batches.entries()) {
    try {
      const result = await postFiles(batch, overall(n));
      total.upserted += result.upserted ?? 0;
      total.chunks += result.chunks ?? 0;
      total.index_version = result.index_version ?? total.index_version;
      total.skipped.push(...(result.skipped ?? []));
      total.changes.push(...(result.access_changes ?? []));
    } catch (err) {
      total.failedBatches += 1;
      total.error ||= err.message;
      total.failed.push(...batch.map((f) => ({ id: f.name, reason: `not added: ${err.message}` })));
    }
  }
  return total;
}

// XHR rather than fetch: fetch cannot report upload progress.
function postFiles(files, onProgress) {
  return new Promise((resolve, reject) => {
    const form = new FormData();
    for (const file of files) form.append('files', file, file.name);
    const xhr = new XMLHttpRequest();
    xhr.open('POST', '/api/v1/documents');
    xhr.setRequestHeader('Accept', 'application/json');
    for (const [name, value] of Object.entries(authHeaders({ admin: true }))) xhr.setRequestHeader(name, value);
    xhr.upload.onprogress = (e) => { if (e.lengthComputable) onProgress(e.loaded / e.total); };
    xhr.upload.onload = () => onProgress(null);
    xhr.onerror = () => reject(new ApiError('Cannot reach the server.'));
    xhr.onload = () => {
      if (xhr.status < 200 || xhr.status >= 300) {
        reject(errorFromBody(xhr.status, xhr.statusText, xhr.responseText, sendsKey(true)));
        return;
      }
      try {
        resolve(JSON.parse(xhr.responseText));
      } catch {
        reject(new ApiError('The server sent an unreadable response.'));
      }
    };
    xhr.send(form);
  });
}

function showUploadResult(message, skipped, isError = false, changed = []) {
  uploadStatus.textContent = message;
  uploadStatus.classList.toggle('error', isError);
  skippedList.hidden = skipped.length === 0;
  skippedList.replaceChildren(...skipped.map((s) => el('li', {},
    el('code', { text: s.id ?? DASH }), `: ${s.reason ?? 'skipped'}`)));
  changes.hidden = changed.length === 0;
  changedList.replaceChildren(...changed.map(changeItem));
}

// ---- index status ----------------------------------------------------------------------

function display(value) {
  if (value == null || value === '') return DASH;
  if (isNum(value)) return formatNum(value);
  return typeof value === 'object' ? JSON.stringify(value) : String(value);
}

async function refreshIndex() {
  const list = byId('index-status');
  let rows;
  try {
    const s = await requestJSON('/api/v1/index');
    rows = [
      ['Documents', display(s.documents)],
      ['Chunks', display(s.chunks)],
      ['Index version', display(s.index_version)],
      ['Embedding model', display(s.embedding_model)],
      ['Vector index', display(s.vector_index)],
      ['Ready', s.ready == null ? DASH : s.ready ? 'yes' : 'no, still loading'],
    ];
  } catch (err) {
    rows = [['Status', `unavailable: ${err.message}`]];
  }
  list.replaceChildren(...rows.map(([term, value]) =>
    el('div', {}, el('dt', { text: term }), el('dd', { text: value }))));
}

// ---- the list --------------------------------------------------------------------------

/** reset: the first page again (whatever is loading is dropped); else the page after the ones shown. */
async function loadDocuments(reset) {
  if (!reset && listInFlight) return; // a second click on "Show more" would load the same page twice
  const ticket = ++listTicket;
  listInFlight = true;
  // aria-disabled, not disabled: disabling the focused button would drop keyboard focus to the page's top.
  docListMore.setAttribute('aria-disabled', 'true');
  docListStatus.textContent = 'Loading…';
  try {
    // Read anew, the list keeps as many documents as it shows (the pages opened with "Show more"), up to the most
    // one request may ask for.
    const again = Math.min(Math.max(LIST_PAGE, docList.children.length), window.LIKEOPT_MAX_LIST_LIMIT || LIST_PAGE);
    const query = new URLSearchParams({ limit: String(reset ? again : LIST_PAGE), after_id: reset ? '' : nextAfterId });
    const page = await requestJSON(`/api/v1/documents?${query}`);
    if (ticket !== listTicket) return;
    const items = page.documents.map((doc) => documentItem(doc));
    const moreFocused = document.activeElement === docListMore;
    if (reset) redrawList(items);
    else docList.append(...items);
    // Asked for from the keyboard: go on reading at the first new document (the button may hide: the last page).
    if (!reset && moreFocused) items[0]?.querySelector('.open-document')?.focus();
    nextAfterId = page.next_after_id;
    docListMore.hidden = !nextAfterId;
    listTotal = page.total;
    showListCount();
  } catch (err) {
    if (ticket === listTicket) docListStatus.textContent = `Listing failed: ${err.message}`;
  } finally {
    if (ticket === listTicket) {
      listInFlight = false;
      docListMore.removeAttribute('aria-disabled');
    }
  }
}

/** Drawing the list anew replaces its buttons: keyboard focus goes on to the same button of the same document (a
 *  pending delete stays pending: confirm.js), or, when that document is no longer listed, to the first one. */
function redrawList(items) {
  const focused = docList.contains(document.activeElement) ? document.activeElement : null;
  const docId = focused?.closest('li')?.dataset.docId;
  const which = focused?.classList.contains('danger') ? 'button.danger' : '.open-document';
  docList.replaceChildren(...items);
  if (!focused) return;
  const again = items.find((item) => item.dataset.docId === docId);
  (again?.querySelector(which) ?? items[0]?.querySelector(which) ?? byId('index-refresh')).focus({ preventScroll: true });
}

function showListCount() {
  docListStatus.textContent = `${plural(docList.children.length, 'document')} of ${formatNum(listTotal)} shown.`;
}

function documentItem(doc) {
  const item = el('li', { class: 'hit' },
    el('div', { class: 'hit-body' }, ...titleAndId(doc.id, doc.title, ` · ${plural(doc.chunks, 'chunk')}`)));
  item.dataset.docId = doc.id;
  item.append(deleteButton('list', doc.id, item, docListStatus));
  return item;
}

// ---- one document -----------------------------------------------------------------------

const documentDialog = byId('document-dialog');
documentDialog.addEventListener('click', (e) => {
  if (e.target === documentDialog) documentDialog.close(); // a click on the backdrop
});

let idsShown = 0;

/** A document's title, a button that opens the whole document, then a line of its id and `rest`. The button is
 *  described by the id, so a screen reader tells apart two documents of one title (their buttons share a name). */
function titleAndId(docId, title, rest) {
  const id = el('code', { class: 'doc-id', id: `doc-id-${++idsShown}`, text: docId });
  const open = el('button', {
    type: 'button', class: 'hit-title open-document', title: 'Open the document', dir: 'auto',
    'aria-describedby': id.id, onclick: (e) => openDocument(docId, e.currentTarget),
  }, title || 'Untitled');
  return [open, el('span', { class: 'muted small' }, id, rest)];
}

/** The document as the index holds it, chunk by chunk (GET /api/v1/documents/{id}). */
async function openDocument(docId, opener) {
  byId('document-title').textContent = 'Loading…';
  byId('document-id').textContent = docId;
  byId('document-meta').textContent = '';
  const chunks = byId('document-chunks');
  chunks.replaceChildren();
  documentDialog.showModal();
  documentDialog.addEventListener('close', () => opener.focus(), { once: true });
  try {
    const doc = await requestJSON(`/api/v1/documents/${encodeURIComponent(docId)}`);
    byId('document-title').textContent = doc.title || 'Untitled';
    const metadata = Object.entries(doc.metadata ?? {}).map(([key, value]) => `${key}: ${value}`);
    byId('document-meta').textContent = [plural(doc.chunks.length, 'chunk'), ...metadata].join(' · ');
    chunks.replaceChildren(...doc.chunks.map((chunk) => el('li', {}, el('p', { class: 'passage', dir: 'auto', text: chunk.text }))));
  } catch (err) {
    byId('document-title').textContent = `Cannot open it: ${err.message}`;
  }
}

// ---- delete ----------------------------------------------------------------------------

/** Returns the server's answer; refreshes the index status, and takes the document off the list and the search
 *  results (opening it there would only say it is not found). */
async function deleteDocument(id) {
  const result = await requestJSON(`/api/v1/documents/${encodeURIComponent(id)}`, { method: 'DELETE', admin: true });
  refreshIndex();
  for (const item of [...docList.children, ...searchResults.children]) if (item.dataset.docId === id) item.remove();
  listTotal = Math.max(listTotal - (Number(result.deleted) || 0), 0);
  showListCount();
  return result;
}

async function onDeleteSubmit(e) {
  e.preventDefault();
  const input = byId('delete-id');
  const status = byId('delete-status');
  const id = input.value.trim();
  if (!id) return;
  status.classList.remove('error');
  status.textContent = `Deleting “${id}”…`;
  try {
    const result = await deleteDocument(id);
    // `deleted` is a count (or a boolean); 0 means there was no such document.
    if (Number(result.deleted) > 0) {
      status.textContent = `Deleted “${id}”. Index version ${display(result.index_version)}.`;
      input.value = '';
    } else {
      status.textContent = `No document with id “${id}”.`;
    }
  } catch (err) {
    if (err.status === 404) {
      // The server's answer for an id it does not hold (or one the caller may not see): nothing failed.
      status.textContent = `No document with id “${id}”.`;
      return;
    }
    status.classList.add('error');
    status.textContent = `Delete failed: ${err.message}`;
  }
}

// ---- search ----------------------------------------------------------------------------

async function onSearch(e) {
  e.preventDefault();
  const query = byId('doc-search').value.trim();
  if (!query) return;
  searchStatus.textContent = 'Searching…';
  try {
    const mode = byId('doc-search-mode').value;
    const result = await requestJSON('/api/v1/search', { method: 'POST', body: { query, top_k: 20, mode } });
    const docs = bestHitPerDocument(result.hits ?? []);
    searchResults.replaceChildren(...docs.map(hitItem));
    searchStatus.textContent = `${plural(docs.length, 'document')} found in ${formatMs(result.took_ms)}.`;
  } catch (err) {
    searchResults.replaceChildren();
    searchStatus.textContent = `Search failed: ${err.message}`;
  }
}

/** Hits are chunks, ranked best first; list each document once with its best chunk. */
function bestHitPerDocument(hits) {
  const docs = new Map();
  for (const hit of hits) {
    if (docs.has(hit.doc_id)) docs.get(hit.doc_id).passages++;
    else docs.set(hit.doc_id, { ...hit, passages: 1 });
  }
  return [...docs.values()];
}

function hitItem(hit) {
  const score = isNum(hit.score) ? hit.score.toFixed(3) : DASH;
  const extra = hit.passages > 1 ? ` · ${hit.passages} passages` : '';
  const item = el('li', { class: 'hit' },
    el('div', { class: 'hit-body' },
      ...titleAndId(hit.doc_id, hit.title, ` · score ${score}${extra}`),
      el('p', { class: 'hit-text muted small', dir: 'auto', text: (hit.text ?? '').slice(0, 200) })));
  item.dataset.docId = hit.doc_id;
  item.append(deleteButton('search', hit.doc_id, item, searchStatus));
  return item;
}

/** Deleting is one click away here, so the button asks for a second press to confirm; status tells how it went.
 *  `list` names the list the item is in: a press pending there stays pending when that list is drawn again. */
function deleteButton(list, docId, item, status) {
  const button = el('button', { type: 'button', class: 'button danger small' });
  const say = (text) => { status.textContent = text; };
  return confirmFirst(button, {
    key: `${list}:${docId}`,
    idle: ['Delete', `Delete ${docId}`], armed: ['Confirm delete', `Confirm delete ${docId}`], say,
    asked: `Press again to delete “${docId}”.`, kept: `Kept “${docId}”: not deleted.`,
    action: () => deleteListed(docId, item, button, say),
  });
}

/** Delete the document of a list's `item`; focus goes to its neighbour, or stays on its `button` when it fails. */
async function deleteListed(docId, item, button, say) {
  // aria-disabled, not disabled: disabling the focused button would drop keyboard focus to the page's top, where a
  // failed delete (no API key yet) would leave it.
  button.setAttribute('aria-disabled', 'true');
  const next = item.nextElementSibling ?? item.previousElementSibling;
  try {
    await deleteDocument(docId);
    item.remove();
    (next?.querySelector('button') ?? byId('doc-search')).focus();
    say(`Deleted “${docId}”.`);
  } catch (err) {
    button.removeAttribute('aria-disabled');
    say(`Delete failed: ${err.message}`);
  }
}
