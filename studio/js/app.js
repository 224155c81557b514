// The Studio's shell: the hash router (#/explorer, #/query, #/cache, #/dashboard, #/profiles),
// the connection picker in the top bar, and the page life cycle (a page's unmount stops its
// timers before the next page is drawn).

import { h, replace } from './dom.js';
import { Client } from './api.js';
import { activeProfile, listProfiles, setActiveProfile } from './store.js';
import * as profiles from './pages/profiles.js';
import * as explorer from './pages/explorer.js';
import * as query from './pages/query.js';
import * as cache from './pages/cache.js';
import * as dashboard from './pages/dashboard.js';

const pages = { profiles, explorer, query, cache, dashboard };

let unmount = null;

function route() {
  const hash = window.location.hash.replace(/^#\/?/, '');
  const [name, ...rest] = hash.split('/');
  const arg = rest.length ? decodeURIComponent(rest.join('/')) : '';
  if (pages[name]) return { name, arg };
  // No (or an unknown) route: a first visit sets up a connection, later ones open the data.
  return { name: listProfiles().length ? 'explorer' : 'profiles', arg: '', redirect: true };
}

function render() {
  const r = route();
  if (r.redirect) {
    window.location.replace(`#/${r.name}`);
    return; // hashchange renders it
  }
  if (unmount) {
    try {
      unmount();
    } catch (e) {
      console.error(e);
    }
    unmount = null;
  }
  const profile = activeProfile();
  const ctx = {
    profile,
    client: new Client(profile),
    go: (hash) => {
      if (window.location.hash === hash) render();
      else window.location.hash = hash;
    },
    profilesChanged: renderConnection,
  };
  for (const a of document.querySelectorAll('.nav a'))
    a.classList.toggle('active', a.dataset.route === r.name);
  renderConnection();
  const main = document.getElementById('main');
  replace(main);
  document.title = `${pages[r.name].title} · litedist Studio`;
  unmount = pages[r.name].mount(main, ctx, r.arg) || null;
}

/** The top bar's connection picker: every saved profile, or the default one. */
function renderConnection() {
  const conn = document.getElementById('conn');
  const list = listProfiles();
  const current = activeProfile();
  const select = h('select', { 'aria-label': 'Connection', 'data-testid': 'profile-select' },
    (list.length ? list : [current]).map((p) =>
      h('option', { value: p.id, props: { selected: p.id === current.id } },
        `${p.name} — ${p.database}`)));
  select.disabled = !list.length;
  select.addEventListener('change', () => {
    setActiveProfile(select.value);
    render();
  });
  replace(conn,
    h('span', { class: 'conn-label' }, 'Connection'),
    select,
    h('span', { class: 'conn-url', title: current.url, 'data-testid': 'conn-url' }, current.url));
}

window.addEventListener('hashchange', render);
window.addEventListener('storage', (e) => {
  // Another tab changed the profiles: show the same ones here.
  if (e.key && e.key.startsWith('litedist.studio.')) renderConnection();
});
render();
