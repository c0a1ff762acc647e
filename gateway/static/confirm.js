// A button whose action cannot be undone (a delete) asks for a second press: the first changes its words and name
// to say so, and Escape, or CONFIRM_MS passing, takes it back.

const CONFIRM_MS = 5000;

/** When each pending press, by its button's key, lapses (Date.now() ms): a list drawn anew makes new buttons, and one
 *  with the key of a pending one takes its state over, so a refresh never cancels a delete the user has begun. */
const pending = new Map();

/**
 * Make `button` run `action` on its second press. `key` names what it acts on within its list (a button drawn again
 * for the same item has the same key); `idle` and `armed` are [words, accessible name] before and after the first
 * press; `say(text)` tells the user `asked` after it and `kept` when Escape takes it back. A press while the button
 * is aria-disabled (its action under way) does nothing.
 */
export function confirmFirst(button, { key, idle, armed, asked, kept, say, action }) {
  let timer = null;
  let until = 0;
  const show = ([words, name]) => {
    button.textContent = words;
    button.setAttribute('aria-label', name);
  };
  const disarm = () => {
    clearTimeout(timer);
    timer = null;
    if (pending.get(key) === until) pending.delete(key); // not a later press's, made on the button drawn after this
    show(idle);
  };
  const arm = (lapses) => {
    until = lapses;
    pending.set(key, until);
    show(armed);
    timer = setTimeout(disarm, until - Date.now());
  };
  button.addEventListener('keydown', (e) => {
    if (e.key !== 'Escape' || !timer) return;
    e.preventDefault();
    disarm();
    say(kept);
  });
  button.addEventListener('click', () => {
    if (button.getAttribute('aria-disabled') === 'true') return;
    if (timer) {
      disarm();
      action();
      return;
    }
    arm(Date.now() + CONFIRM_MS);
    say(asked);
  });
  if (pending.get(key) > Date.now()) arm(pending.get(key));
  else show(idle);
  return button;
}
