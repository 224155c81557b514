// What the Studio keeps in the browser (localStorage): connection profiles, the active one,
// query history, column choices. Everything is read defensively: a value edited by hand or
// written by another version never breaks the page.

const PREFIX = 'litedist.studio.';

function read(key, fallback) {
  try {
    const text = localStorage.getItem(PREFIX + key);
    return text === null ? fallback : JSON.parse(text);
  } catch {
    return fallback;
  }
}

function write(key, value) {
  try {
    localStorage.setItem(PREFIX + key, JSON.stringify(value));
    return true;
  } catch {
    return false; // storage full or disabled: the Studio still works for this visit
  }
}

// ---------------------------------------------------------------------------------------------
// Profiles: {id, name, url, database, apiKey}
// ---------------------------------------------------------------------------------------------

export const DEFAULT_DATABASE = 'testapp';
export const DEFAULT_API_KEY = 'root';

/** The node that served the Studio (its own origin), else the contract's default. */
export function defaultServerUrl() {
  const { protocol, origin } = window.location;
  return protocol === 'http:' || protocol === 'https:' ? origin : 'http://localhost:1446';
}

/** The profile used while none is saved: this node, database testapp, key root. */
export function defaultProfile() {
  return {
    id: 'default',
    name: 'Default',
    url: defaultServerUrl(),
    database: DEFAULT_DATABASE,
    apiKey: DEFAULT_API_KEY,
    builtIn: true,
  };
}

function validProfile(p) {
  return p && typeof p === 'object' && typeof p.id === 'string' && typeof p.url === 'string' &&
    typeof p.database === 'string' && typeof p.apiKey === 'string';
}

export function listProfiles() {
  const list = read('profiles', []);
  return Array.isArray(list) ? list.filter(validProfile) : [];
}

export function saveProfile(profile) {
  const list = listProfiles();
  const p = {
    id: profile.id || newId(),
    name: String(profile.name || '').trim() || profile.url,
    url: profile.url,
    database: profile.database,
    apiKey: profile.apiKey,
  };
  const i = list.findIndex((x) => x.id === p.id);
  if (i >= 0) list[i] = p;
  else list.push(p);
  write('profiles', list);
  return p;
}

export function deleteProfile(id) {
  write('profiles', listProfiles().filter((p) => p.id !== id));
  if (read('activeProfile', null) === id) write('activeProfile', null);
}

/** The active profile: the chosen saved one, else the first saved, else the default. */
export function activeProfile() {
  const list = listProfiles();
  const id = read('activeProfile', null);
  return list.find((p) => p.id === id) || list[0] || defaultProfile();
}

export function setActiveProfile(id) {
  write('activeProfile', id);
}

function newId() {
  return `p-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;
}

/**
 * Checks a profile form; returns {profile} with the normalized values or {error}. The database
 * name follows the contract (trimmed, lowercased, ^[a-z0-9][a-z0-9_-]{0,62}$); the server
 * checks again and its answer is what counts.
 */
export function normalizeProfile(form) {
  let url;
  try {
    url = new URL(String(form.url || '').trim());
  } catch {
    return { error: 'Server URL must be an absolute URL, like http://localhost:1446.' };
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:')
    return { error: 'Server URL must start with http:// or https://.' };
  if (url.username || url.password || url.search || url.hash)
    return { error: 'Server URL takes a scheme, host, port and path only.' };
  const database = String(form.database || '').trim().toLowerCase();
  if (!/^[a-z0-9][a-z0-9_-]{0,62}$/.test(database))
    return {
      error: "Database: 1-63 of lowercase letters, digits, '-' or '_', starting with a letter or digit.",
    };
  const apiKey = String(form.apiKey || '').trim();
  if (!apiKey) return { error: 'ApiKey is required.' };
  return {
    profile: {
      id: form.id || '',
      name: String(form.name || '').trim(),
      url: url.href.replace(/\/+$/, ''),
      database,
      apiKey,
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Query history and column choices
// ---------------------------------------------------------------------------------------------

const HISTORY_MAX = 30;

export function queryHistory() {
  const list = read('queryHistory', []);
  return Array.isArray(list) ? list.filter((q) => typeof q === 'string') : [];
}

export function rememberQuery(text) {
  const q = String(text).trim();
  if (!q) return queryHistory();
  const list = [q, ...queryHistory().filter((x) => x !== q)].slice(0, HISTORY_MAX);
  write('queryHistory', list);
  return list;
}

export function clearQueryHistory() {
  write('queryHistory', []);
}

/** Columns chosen for a grid (a collection of a database), or null for the default. */
export function chosenColumns(scope) {
  const all = read('columns', {});
  const v = all && typeof all === 'object' ? all[scope] : null;
  return Array.isArray(v) ? v.filter((c) => typeof c === 'string') : null;
}

export function chooseColumns(scope, columns) {
  const all = read('columns', {});
  const next = all && typeof all === 'object' && !Array.isArray(all) ? all : {};
  if (columns === null) delete next[scope];
  else next[scope] = columns;
  write('columns', next);
}

// ---------------------------------------------------------------------------------------------
// The theme: 'dark', 'light', or null to follow the system (prefers-color-scheme)
// ---------------------------------------------------------------------------------------------

export function theme() {
  const t = read('theme', null);
  return t === 'dark' || t === 'light' ? t : null;
}

export function setTheme(t) {
  write('theme', t === 'dark' || t === 'light' ? t : null);
}
