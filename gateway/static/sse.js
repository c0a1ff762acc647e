// Server-sent events over POST. EventSource only does GET, so the stream is read with
// fetch + ReadableStream and parsed here following the WHATWG event-stream rules.

import { ApiError, authHeaders, errorFromResponse } from './api.js';

/**
 * Incremental event-stream parser. push() accepts arbitrary text chunks (lines and events
 * may be split anywhere); onEvent receives {type, data, id} for every complete event.
 */
export function createSSEParser(onEvent) {
  let buffer = '';
  let type = '';
  let data = [];
  let lastId = '';

  function dispatch() {
    if (data.length) onEvent({ type: type || 'message', data: data.join('\n'), id: lastId });
    type = '';
    data = [];
  }

  function line(text) {
    if (text === '') return dispatch();
    if (text[0] === ':') return; // comment: heartbeat
    const colon = text.indexOf(':');
    const field = colon < 0 ? text : text.slice(0, colon);
    let value = colon < 0 ? '' : text.slice(colon + 1);
    if (value[0] === ' ') value = value.slice(1);
    if (field === 'event') type = value;
    else if (field === 'data') data.push(value);
    else if (field === 'id' && !value.includes('\0')) lastId = value;
  }

  return {
    push(chunk) {
      buffer += chunk;
      // A final '\r' may be the first half of a '\r\n' split across chunks; keep it back
      // so the '\n' is not read as an extra empty line (which would dispatch early).
      const end = buffer.endsWith('\r') ? buffer.length - 1 : buffer.length;
      const lines = buffer.slice(0, end).split(/\r\n|\r|\n/);
      buffer = lines.pop() + buffer.slice(end);
      lines.forEach(line);
    },
    /** End of stream: flush a last event even if the server omitted the blank line. */
    end() {
      if (buffer) buffer.split(/\r\n|\r|\n/).forEach(line);
      buffer = '';
      dispatch();
    },
  };
}

/**
 * POST `body` as JSON and call onEvent(type, payload, id) for each event, with `data` parsed
 * as JSON. `lastEventId` asks to continue a stream after the event of that id (sent as Last-Event-ID).
 * Resolves when the stream ends; rejects with ApiError on an HTTP error status or when
 * the connection breaks after the response began (code 'connection_lost'), with a TypeError when
 * the server cannot be reached at all, and with an AbortError when `signal` fires.
 */
export async function streamSSE(url, body, { signal, onEvent, lastEventId = '' }) {
  const headers = { 'Content-Type': 'application/json', Accept: 'text/event-stream', ...authHeaders() };
  if (lastEventId) headers['Last-Event-ID'] = lastEventId;
  const res = await fetch(url, { method: 'POST', headers, body: JSON.stringify(body), signal });
  if (!res.ok) throw await errorFromResponse(res);

  const parser = createSSEParser(({ type, data, id }) => {
    let payload;
    try {
      payload = JSON.parse(data);
    } catch {
      onEvent('error', { code: 'bad_event', message: `Unreadable "${type}" event from the server.` });
      return;
    }
    onEvent(type, payload, id);
  });
  const reader = res.body.getReader();
  const decoder = new TextDecoder(); // stream mode keeps multi-byte characters split across chunks intact
  for (;;) {
    const { value, done } = await read(reader);
    if (done) break;
    parser.push(decoder.decode(value, { stream: true }));
  }
  parser.push(decoder.decode());
  parser.end();
}

/** The next chunk of a response; a connection that breaks now broke mid-stream (the server went away), which is
 *  not the same as a server never reached. */
async function read(reader) {
  try {
    return await reader.read();
  } catch (err) {
    if (err.name === 'AbortError') throw err;
    throw new ApiError('The connection was lost during the answer.', { code: 'connection_lost' });
  }
}
