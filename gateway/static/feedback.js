// Thumbs up or down on an answer, with an optional comment: POST /api/v1/feedback.
// A thumb chooses the rating and opens the comment box; Send stores it (once). What was sent
// is kept in the saved message, so a reloaded conversation shows it instead of the buttons.

import { el } from './dom.js';
import { requestJSON } from './api.js';


export function feedbackForm(msg) {
  const root = el('div', { class: 'feedback', role: 'group', 'aria-label': 'Rate this answer' });
  if (msg.feedback?.sent) {
    root.append(el('span', { class: 'feedback-done', text: thanks(msg.feedback.rating) }));
    return root;
  }
  const status = el('span', { class: 'feedback-status', role: 'status' });
  const comment = el('textarea', {
    // The longest comment the server stores, from /static/config.js.
    class: 'feedback-comment', rows: 2, dir: 'auto', maxlength: window.LIKEOPT_MAX_COMMENT_CHARS,
    placeholder: 'What was wrong or right? (optional)',
    'aria-label': 'Comment on this answer (optional)',
  });
  const send = el('button', { type: 'button', class: 'feedback-send', text: 'Send feedback' });
  const details = el('div', { class: 'feedback-details', hidden: true }, comment, send);
  let rating = '';
  const thumb = (value, label, symbol) => el('button', {
    type: 'button', class: `feedback-thumb ${value}`, 'aria-label': label, 'aria-pressed': 'false', title: label,
    onclick: (e) => {
      rating = value;
      for (const b of root.querySelectorAll('.feedback-thumb')) b.setAttribute('aria-pressed', String(b === e.currentTarget));
      details.hidden = false;
      comment.focus();
    },
  }, symbol);
  send.addEventListener('click', async () => {
    if (send.getAttribute('aria-disabled') === 'true') return; // being sent
    // aria-disabled, not disabled: disabling the focused button would drop keyboard focus to the page's top, where
    // a refusal would leave it.
    send.setAttribute('aria-disabled', 'true');
    status.textContent = 'Sending…';
    try {
      await requestJSON('/api/v1/feedback', {
        method: 'POST', body: { answer_id: msg.meta.answer_id, rating, comment: comment.value.trim() },
      });
      msg.feedback = { rating, sent: true };
      root.dispatchEvent(new CustomEvent('message-changed', { bubbles: true }));
      // The form is gone: the thanks takes keyboard focus (and is read out) so the user keeps their place.
      const done = el('span', { class: 'feedback-done', text: thanks(rating), tabindex: '-1', role: 'status' });
      root.replaceChildren(done);
      done.focus();
    } catch (err) {
      status.textContent = `Not sent: ${err.message}`;
      send.removeAttribute('aria-disabled');
    }
  });
  root.append(
    el('span', { class: 'muted', text: 'Was this answer good?' }),
    thumb('up', 'Good answer', '▲ Yes'), thumb('down', 'Bad answer', '▼ No'), details, status,
  );
  return root;
}

function thanks(rating) {
  return rating === 'down' ? 'Thanks: marked as a bad answer.' : 'Thanks: marked as a good answer.';
}
