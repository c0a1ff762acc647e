// A button whose action cannot be undone (a delete) asks for a second press: the first changes its words and name
// to say so, and Escape, or CONFIRM_MS passing, takes it back.

const CONFIRM_MS = 5000;

/**
 * Make `button` run `action` on its second press. `idle` and `armed` are [words, accessible name] before and after
 * the first press; `say(text)` tells the user `asked` after it and `kept` when Escape takes it back. A press while
 * the button is aria-disabled (its action under way) does nothing.
 */
export function confirmFirst(button, { idle, armed, asked, kept, say, action }) {
  let timer = null;
  const show = ([words, name]) => {
    button.textContent = words;
    button.setAttribute('aria-label', name);
  };
  const disarm = () => {
    clearTimeout(timer);
    timer = null;
    show(idle);
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
    show(armed);
    say(asked);
    timer = setTimeout(disarm, CONFIRM_MS);
  });
  show(idle);
  return button;
}
