// Connections: profiles (server URL, database, ApiKey) kept in this browser, a form to add or
// edit one, a connection test, and which one the other pages use.

import { h, replace } from '../dom.js';
import { Client } from '../api.js';
import { confirmDialog, field, noticeArea } from '../ui.js';
import {
  activeProfile, defaultProfile, deleteProfile, listProfiles, normalizeProfile, saveProfile,
  setActiveProfile,
} from '../store.js';

export const title = 'Connections';

export function mount(main, ctx) {
  const notice = noticeArea('profile-notice');
  const listEl = h('div', { class: 'profile-list', 'data-testid': 'profile-list' });
  const formTitle = h('h2', {}, 'New connection');
  const inputs = {
    id: h('input', { type: 'hidden' }),
    name: h('input', { type: 'text', name: 'name', autocomplete: 'off', 'data-testid': 'profile-name',
      placeholder: 'local' }),
    url: h('input', { type: 'url', name: 'url', autocomplete: 'off', 'data-testid': 'profile-url',
      required: true }),
    database: h('input', { type: 'text', name: 'database', autocomplete: 'off',
      'data-testid': 'profile-database', required: true, spellcheck: 'false' }),
    apiKey: h('input', { type: 'password', name: 'apiKey', autocomplete: 'off',
      'data-testid': 'profile-apikey', required: true, spellcheck: 'false' }),
  };
  const showKey = h('input', { type: 'checkbox', 'data-testid': 'profile-showkey' });
  showKey.addEventListener('change', () => {
    inputs.apiKey.type = showKey.checked ? 'text' : 'password';
  });

  function fill(p) {
    const d = defaultProfile();
    inputs.id.value = p ? p.id : '';
    inputs.name.value = p ? p.name : '';
    inputs.url.value = p ? p.url : d.url;
    inputs.database.value = p ? p.database : d.database;
    inputs.apiKey.value = p ? p.apiKey : d.apiKey;
    replace(formTitle, p ? `Edit ${p.name}` : 'New connection');
  }

  function readForm() {
    const r = normalizeProfile({
      id: inputs.id.value, name: inputs.name.value, url: inputs.url.value,
      database: inputs.database.value, apiKey: inputs.apiKey.value,
    });
    if (r.error) notice.error(r.error);
    return r.profile || null;
  }

  async function test(profile) {
    notice.clear();
    const client = new Client(profile);
    const node = await client.node();
    if (!node.ok) {
      notice.error(node.error);
      return false;
    }
    // The contract's Studio reads the overview first; it also proves the key is accepted.
    const ov = await client.overview();
    if (!ov.ok) {
      notice.error(`${node.body?.NodeId ?? 'The node'} answers, but: ${ov.error}`);
      return false;
    }
    // A misspelt database would read as an empty one: say it does not exist, and offer the list.
    const dbs = await client.databases();
    if (dbs.ok && Array.isArray(dbs.body) && !dbs.body.includes(profile.database)) {
      const names = dbs.body.filter((n) => typeof n === 'string');
      notice.error(`Connected to ${ov.body?.NodeId}, but database '${profile.database}' does not exist` +
        (names.length ? '. Pick one: ' : ' (this key sees no database yet; a first write creates it).'));
      if (names.length)
        notice.el.append(h('span', { class: 'db-picks', 'data-testid': 'db-picks' }, names.map((n) =>
          h('button', { type: 'button', class: 'btn btn-small', 'data-testid': 'db-pick',
            on: { click: () => {
              inputs.database.value = n;
              notice.clear();
            } } }, n))));
      return false;
    }
    const cols = await client.collections();
    if (!cols.ok) {
      notice.error(`Connected to ${ov.body?.NodeId}, but database '${profile.database}': ${cols.error}`);
      return false;
    }
    notice.ok(`Connected to node ${ov.body?.NodeId} (${ov.body?.Databases?.length ?? 0} ` +
      `databases visible); '${profile.database}' has ${cols.body?.length ?? 0} collections.`);
    return true;
  }

  function renderList() {
    const list = listProfiles();
    const active = activeProfile();
    if (!list.length) {
      replace(listEl, h('p', { class: 'muted' },
        'No saved connection yet: the Studio uses the default one (this node, database ',
        h('code', {}, defaultProfile().database), ', key ', h('code', {}, 'root'),
        '). Save one below.'));
      return;
    }
    const rows = list.map((p) => h('tr', { 'data-testid': 'profile-row', dataset: { id: p.id } },
      h('td', {}, p.name, p.id === active.id ? h('span', { class: 'badge badge-online' }, 'in use') : null),
      h('td', {}, h('code', {}, p.url)),
      h('td', {}, h('code', {}, p.database)),
      h('td', { class: 'actions' },
        h('button', { type: 'button', class: 'btn btn-small btn-primary', 'data-testid': 'profile-use',
          on: { click: () => {
            setActiveProfile(p.id);
            ctx.profilesChanged();
            renderList();
            fill(p); // the form shows the profile in use, not the one edited before
            notice.ok(`Using ${p.name}.`);
          } } }, 'Use'),
        h('button', { type: 'button', class: 'btn btn-small', 'data-testid': 'profile-edit',
          on: { click: () => fill(p) } }, 'Edit'),
        h('button', { type: 'button', class: 'btn btn-small btn-danger', 'data-testid': 'profile-delete',
          on: { click: async () => {
            const yes = await confirmDialog({ title: 'Remove connection',
              message: `Remove the connection '${p.name}' from this browser? Nothing on the server changes.`,
              confirmText: 'Remove', danger: true });
            if (!yes) return;
            deleteProfile(p.id);
            ctx.profilesChanged();
            renderList();
            if (inputs.id.value === p.id) fill(null);
          } } }, 'Remove'))));
    replace(listEl, h('div', { class: 'table-scroll' }, h('table', { class: 'table' },
      h('thead', {}, h('tr', {}, ['Name', 'Server', 'Database', ''].map((t) => h('th', {}, t)))),
      h('tbody', {}, rows))));
  }

  const form = h('form', { class: 'form', 'data-testid': 'profile-form', novalidate: true,
    on: { submit: async (e) => {
      e.preventDefault();
      const p = readForm();
      if (!p) return;
      const saved = saveProfile(p);
      setActiveProfile(saved.id);
      fill(saved);
      ctx.profilesChanged();
      renderList();
      if (await test(saved))
        notice.ok(`Saved '${saved.name}' and connected: it is now the connection in use.`);
    } } },
    formTitle,
    inputs.id,
    field('Name', inputs.name, 'How this connection is listed.'),
    field('Server URL', inputs.url, 'The node, e.g. http://localhost:1446.'),
    field('Database', inputs.database, "Lowercase letters, digits, '-' and '_'."),
    field('ApiKey', inputs.apiKey),
    h('label', { class: 'check' }, showKey, ' Show key'),
    h('div', { class: 'form-actions' },
      h('button', { type: 'submit', class: 'btn btn-primary', 'data-testid': 'profile-save' },
        'Save and use'),
      h('button', { type: 'button', class: 'btn', 'data-testid': 'profile-test',
        on: { click: () => {
          const p = readForm();
          if (p) test(p);
        } } }, 'Test connection'),
      h('button', { type: 'button', class: 'btn', on: { click: () => {
        fill(null);
        notice.clear();
      } } }, 'Clear')));

  fill(null);
  renderList();
  replace(main, h('section', { class: 'page page-profiles' },
    h('h1', {}, 'Connections'),
    h('p', { class: 'muted' }, 'Profiles are kept in this browser only (localStorage), ApiKey ',
      'included: use a key with only the roles you need on a shared computer.'),
    listEl, notice.el, form));
}
