// The dashboard's Feedback card: counts of thumbs up and down, and the latest ratings with their
// question, comment and support. Users' words, so it needs the API key (GET /api/v1/feedback);
// refreshed each time the dashboard is opened, not polled.

import { el, byId, DASH } from './dom.js';
import { getApiKey, requestJSON } from './api.js';

export async function showFeedbackPanel() {
  const status = byId('feedback-status');
  const list = byId('feedback-list');
  const counts = byId('feedback-counts');
  // Users' words are shown only while the key that read them is still right: clear them first.
  list.replaceChildren();
  counts.textContent = DASH;
  if (!getApiKey()) {
    status.textContent = 'Enter the API key on the Documents tab to see what users said.';
    return;
  }
  status.textContent = 'Loading…';
  try {
    const data = await requestJSON('/api/v1/feedback?limit=20', { admin: true });
    counts.textContent = `${data.up} good · ${data.down} bad`;
    status.textContent = data.items.length ? '' : 'No feedback yet.';
    list.replaceChildren(...data.items.map(feedbackItem));
  } catch (err) {
    status.textContent = `Feedback not loaded: ${err.message}`;
  }
}

function feedbackItem(item) {
  const support = item.no_answer ? 'not in the documents' : `supported ${Math.round((item.support ?? 0) * 100)} %`;
  return el('li', { class: `feedback-item ${item.rating}` },
    el('span', { class: 'feedback-rating', text: item.rating === 'down' ? '▼' : '▲', 'aria-label': item.rating === 'down' ? 'bad' : 'good' }),
    el('div', {},
      el('p', { class: 'feedback-question', dir: 'auto', text: item.question }),
      item.comment ? el('p', { class: 'feedback-comment-text', dir: 'auto', text: `“${item.comment}”` }) : null,
      el('p', { class: 'muted small', text: `${support} · ${item.backend} · ${new Date(item.created_unix_ms).toLocaleString()}` })));
}
