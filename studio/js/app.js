// The Studio's shell: the hash router (#/db/<db>/explorer/<collection>, #/db/<db>/query,
// #/db/<db>/cache, #/dashboard, #/profiles), the connection and database pickers in the top bar,
// the theme toggle, and the page life cycle (a page's unmount stops its timers and feeds before
// the next page is drawn).

import { h, replace } from './dom.js';
import { Client } from './api.js';
import { activeProfile, listProfiles, setActiveProfile, theme, setTheme } from './store.js';
import * as profiles from './pages/profiles.js';
import * as explorer from './pages/explorer.js';
import * as query from './pages/query.js';
import * as cache from './pages/cache.js';
import * as dashboard from './pages/dashboard.js';

const pages = { profiles, explorer, query, cache, dashboard };
// Pages that work inside one database: their route names it, so a link or a switch never shows
// one database's collection under another's name.
const DB_PAGES = new Set(['explorer', 'query', 'cache']);
const DB_NAME = /^[a-z0-9][a-z0-9_-]{0,62}$/;

let unmount = null;
let shown = { route: null, database: null }; // what the top bar was last drawn for
let lastDb = null; // the database of the last database page, for the nav links elsewhere

/** The database page's hash: #/db/<db>/<page>[/<arg>]. */
export function dbHash(db, page, arg) {
  return `#/db/${encodeURIComponent(db)}/${page}${arg ? '/' + encodeURIComponent(arg) : ''}`;
}

function route() {
  const hash = window.location.hash.replace(/^#\/?/, '');
  const parts = hash.split('/');
  const profile = activeProfile();
  if (parts[0] === 'db' && parts.length >= 3) {
    const db = decodeURIComponent(parts[1]);
    const name = parts[2];
    const arg = parts.length > 3 ? decodeURIComponent(parts.slice(3).join('/')) : '';
    if (DB_PAGES.has(name) && DB_NAME.test(db)) return { name, arg, db };
    return { redirect: dbHash(profile.database, 'explorer') };
  }
  const [name, ...rest] = parts;
  const arg = rest.length ? decodeURIComponent(rest.join('/')) : '';
  // An old link (#/explorer/orders) names no database: it opens in the connection's.
  if (DB_PAGES.has(name)) return { redirect: dbHash(profile.database, name, arg) };
  if (pages[name]) return { name, arg, db: null };
  // No (or an unknown) route: a first visit sets up a connection, later ones open the data.
  return { redirect: listProfiles().length ? dbHash(profile.database, 'explorer') : '#/profiles' };
}

function render() {
  const r = route();
  if (r.redirect) {
    window.location.replace(r.redirect);
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
  const base = activeProfile();
  if (r.db) lastDb = r.db;
  const database = r.db || lastDb || base.database;
  const profile = { ...base, database };
  const ctx = {
    profile,
    homeDatabase: base.database,
    client: new Client(profile),
    go: (hash) => {
      if (window.location.hash === hash) render();
      else window.location.hash = hash;
    },
    dbHash: (page, arg, db = database) => dbHash(db, page, arg),
    // A profile saved or put in use (on the Connections page, which names no database): the
    // top bar and the nav links follow the profile in use from now on.
    profilesChanged: () => {
      lastDb = null;
      const db = r.db || activeProfile().database;
      updateNav(r, db);
      renderConnection(r, db);
    },
  };
  updateNav(r, database);
  renderConnection(r, database);
  const main = document.getElementById('main');
  replace(main);
  document.title = `${pages[r.name].title} · litedist Studio`;
  unmount = pages[r.name].mount(main, ctx, r.arg) || null;
}

/** The nav links: the current page marked (aria-current), database pages in this database. */
function updateNav(r, database) {
  for (const a of document.querySelectorAll('.nav a')) {
    const active = a.dataset.route === r.name;
    a.classList.toggle('active', active);
    if (active) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
    a.href = DB_PAGES.has(a.dataset.route) ? dbHash(database, a.dataset.route) : `#/${a.dataset.route}`;
  }
  shown = { route: r, database };
}

let dbListSeq = 0;

/** The top bar: the connection picker (every saved profile, or the default one), the database
 * picker (GET /api/databases) and the theme toggle. */
function renderConnection(r, database) {
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
    // Another connection: its own database, and no collection of the previous one.
    lastDb = null;
    const next = activeProfile();
    const page = r && DB_PAGES.has(r.name) ? r.name : null;
    const hash = page ? dbHash(next.database, page) : window.location.hash;
    if (window.location.hash === hash) render();
    else window.location.hash = hash;
  });
  const dbSelect = h('select', { 'aria-label': 'Database', 'data-testid': 'db-select' },
    h('option', { value: database, props: { selected: true } }, database));
  dbSelect.addEventListener('change', () => {
    const page = r && DB_PAGES.has(r.name) ? r.name : 'explorer';
    window.location.hash = dbHash(dbSelect.value, page);
  });
  const seq = ++dbListSeq;
  new Client({ ...current, database }).databases().then((res) => {
    if (seq !== dbListSeq || !res.ok || !Array.isArray(res.body)) return;
    const names = res.body.filter((n) => typeof n === 'string');
    if (!names.includes(database)) names.push(database);
    replace(dbSelect, names.sort().map((n) =>
      h('option', { value: n, props: { selected: n === database } },
        res.body.includes(n) ? n : `${n} (not created)`)));
  });
  const themeBtn = h('button', { type: 'button', class: 'btn btn-small theme-toggle',
    'data-testid': 'theme-toggle', 'aria-label': 'Dark mode',
    'aria-pressed': effectiveTheme() === 'dark' ? 'true' : 'false',
    on: { click: () => {
      setTheme(effectiveTheme() === 'dark' ? 'light' : 'dark');
      applyTheme();
      themeBtn.setAttribute('aria-pressed', effectiveTheme() === 'dark' ? 'true' : 'false');
    } } }, '◐');
  replace(conn,
    h('span', { class: 'conn-label' }, 'Connection'),
    select,
    h('span', { class: 'conn-label' }, 'Database'),
    dbSelect,
    h('span', { class: 'conn-url', title: current.url, 'data-testid': 'conn-url' }, current.url),
    themeBtn);
}

// --- the theme: the system's (prefers-color-scheme) until the toggle picks one, remembered ----

const darkQuery = window.matchMedia('(prefers-color-scheme: dark)');

function effectiveTheme() {
  const t = theme();
  return t === 'dark' || t === 'light' ? t : darkQuery.matches ? 'dark' : 'light';
}

function applyTheme() {
  document.documentElement.dataset.theme = effectiveTheme();
}

darkQuery.addEventListener('change', applyTheme);
applyTheme();

// The skip link: to the page's content, without touching the hash the router reads.
document.querySelector('.skip-link')?.addEventListener('click', (e) => {
  e.preventDefault();
  document.getElementById('main').focus();
});
window.addEventListener('hashchange', render);
window.addEventListener('storage', (e) => {
  // Another tab changed the profiles: show the same ones here.
  if (e.key && e.key.startsWith('litedist.studio.')) renderConnection(shown.route, shown.database);
});
render();
