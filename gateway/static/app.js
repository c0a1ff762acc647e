// Entry point: tab bar with hash routing (#chat, #documents, #dashboard).

import { byId } from './dom.js';
import { initChat } from './chat.js';
import { initDocuments, showDocuments } from './documents.js';
import { startDashboard, stopDashboard } from './dashboard.js';
import { showFeedbackPanel } from './feedback_panel.js';

const VIEWS = ['chat', 'documents', 'dashboard'];
const tabs = VIEWS.map((view) => byId(`tab-${view}`));
let currentView = null;

function viewFromHash() {
  const view = location.hash.slice(1);
  return VIEWS.includes(view) ? view : 'chat';
}

function show(view) {
  // Back and Forward hide the view that has keyboard focus: it goes on to the view's tab, not to the page's top.
  const focusedIn = document.querySelector('[role="tabpanel"]:focus-within');
  for (const [i, name] of VIEWS.entries()) {
    const selected = name === view;
    tabs[i].setAttribute('aria-selected', String(selected));
    tabs[i].tabIndex = selected ? 0 : -1; // roving tabindex: one tab stop for the tab bar
    byId(`view-${name}`).hidden = !selected;
  }
  if (focusedIn?.hidden) byId(`tab-${view}`).focus();
  document.title = `${byId(`tab-${view}`).textContent} · Like-Opt`;
  if (view === 'documents' && currentView !== 'documents') showDocuments();
  if (view === 'dashboard' && currentView !== 'dashboard') showFeedbackPanel();
  currentView = view;
  syncPolling();
}

/** Poll the dashboard only while it is on screen. */
function syncPolling() {
  if (currentView === 'dashboard' && !document.hidden) startDashboard();
  else stopDashboard();
}

function select(view) {
  // Going through the hash gives each view a link and Back/Forward history.
  if (location.hash === `#${view}`) show(view);
  else location.hash = view;
}

function onTabKey(e) {
  const i = tabs.indexOf(document.activeElement);
  const target = { ArrowRight: i + 1, ArrowLeft: i - 1, Home: 0, End: tabs.length - 1 }[e.key];
  if (i < 0 || target === undefined) return;
  e.preventDefault();
  const tab = tabs[(target + tabs.length) % tabs.length];
  tab.focus();
  select(tab.dataset.view);
}

for (const tab of tabs) tab.addEventListener('click', () => select(tab.dataset.view));
document.querySelector('[role="tablist"]').addEventListener('keydown', onTabKey);
window.addEventListener('hashchange', () => show(viewFromHash()));
document.addEventListener('visibilitychange', syncPolling);

initChat();
initDocuments();
show(viewFromHash());
