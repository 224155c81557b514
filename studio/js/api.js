// The HTTP client of the Studio: one profile's server URL, database and ApiKey, the contract's
// headers, a time limit on every call, and errors as the server said them (its "Error" string).

const TIMEOUT_MS = 15000;

/** A path segment: percent-encoded, and all-dot segments encoded too so no URL parser folds them. */
export function seg(text) {
  const s = String(text);
  return /^\.+$/.test(s) ? '%2E'.repeat(s.length) : encodeURIComponent(s);
}

export class Client {
  constructor(profile) {
    this.profile = profile;
    this.base = String(profile.url || '').replace(/\/+$/, '');
  }

  /**
   * Sends one request. options:
   *   query     {name: value} appended as the query string
   *   body      text sent as is (JSON the user wrote keeps its exact numbers), or a value that is
   *             JSON-encoded
   *   database  false to leave out the Database header (node-wide routes)
   *   auth      false to leave out the ApiKey header (/node, /health)
   *   timeoutMs the time limit (default 15 s)
   * Resolves, never rejects, to {ok, status, body, text, error, ms}: body is the parsed JSON (or
   * null), text the raw answer, error the server's "Error" string or what went wrong.
   */
  async request(method, path, options = {}) {
    const { query, body, database = true, auth = true, timeoutMs = TIMEOUT_MS, signal } = options;
    let url;
    try {
      url = new URL(this.base + path);
    } catch {
      return fail(0, `The server URL '${this.base}' is not valid.`, 0);
    }
    for (const [k, v] of Object.entries(query || {}))
      if (v !== undefined && v !== null) url.searchParams.set(k, String(v));
    const headers = { Accept: 'application/json' };
    if (auth) headers.ApiKey = this.profile.apiKey;
    if (database) headers.Database = this.profile.database;
    let payload;
    if (body !== undefined) {
      payload = typeof body === 'string' ? body : JSON.stringify(body);
      headers['Content-Type'] = 'application/json';
    }
    const ctl = new AbortController();
    const timer = setTimeout(() => ctl.abort(), timeoutMs);
    // The caller's signal (a page being left) ends the request too, quietly.
    const onAbort = () => ctl.abort();
    if (signal) {
      if (signal.aborted) ctl.abort();
      else signal.addEventListener('abort', onAbort, { once: true });
    }
    const started = performance.now();
    let res, text;
    try {
      res = await fetch(url, { method, headers, body: payload, signal: ctl.signal, cache: 'no-store' });
      text = await res.text();
    } catch (e) {
      const ms = performance.now() - started;
      if (signal && signal.aborted) return { ...fail(0, 'Cancelled.', ms), cancelled: true };
      return fail(0, ctl.signal.aborted
        ? `No answer from ${this.base} within ${timeoutMs / 1000} s.`
        : `Cannot reach ${this.base}: ${e.message || e}. Is the node running, and does it allow ` +
          `this page's origin (Studio.CorsOrigins)?`, ms);
    } finally {
      clearTimeout(timer);
      if (signal) signal.removeEventListener('abort', onAbort);
    }
    const ms = performance.now() - started;
    let parsed = null;
    if (text) {
      try {
        parsed = JSON.parse(text);
      } catch {
        parsed = null;
      }
    }
    if (res.ok) return { ok: true, status: res.status, body: parsed, text, error: null, ms };
    const error = parsed && typeof parsed.Error === 'string'
      ? parsed.Error
      : `HTTP ${res.status}${res.statusText ? ' ' + res.statusText : ''}`;
    return { ok: false, status: res.status, body: parsed, text, error, ms };
  }

  // --- the routes the Studio uses ------------------------------------------------------------

  node() {
    return this.request('GET', '/node', { database: false, auth: false, timeoutMs: 5000 });
  }

  overview() {
    return this.request('GET', '/dashboard/api/overview', { database: false });
  }

  databases() {
    return this.request('GET', '/api/databases', { database: false });
  }

  deleteDatabase(name) {
    return this.request('DELETE', `/api/databases/${seg(name)}`, { database: false });
  }

  // Creates the (empty) collection, and with it the database when it does not exist yet.
  registerCollection(collection) {
    return this.request('POST', `/api/documents/${seg(collection)}/register`);
  }

  // The changes feed as a longpoll (docs/changes.md): the answer waits up to waitMs for a commit.
  // since: a cursor, '0' or 'now'. signal ends the wait when the page is left.
  changes({ since, collections, waitMs = 25000, signal }) {
    return this.request('GET', '/api/changes', {
      query: { feed: 'longpoll', since, collections, include_docs: true, timeout: waitMs },
      timeoutMs: waitMs + 10000, signal,
    });
  }

  collections() {
    return this.request('GET', '/api/documents', { query: { includeSystemCollections: true } });
  }

  // One page of a collection in id order: the documents after the id `after` (null: from the
  // first). Keyset paging, so every page costs the same however deep it is.
  documents(collection, after, take) {
    return this.request('GET', `/api/documents/${seg(collection)}`, { query: { after, take } });
  }

  document(collection, id) {
    return this.request('GET', `/api/documents/${seg(collection)}/${seg(id)}`);
  }

  createDocument(collection, jsonText) {
    return this.request('POST', `/api/documents/${seg(collection)}`, { body: jsonText });
  }

  putDocument(collection, id, jsonText) {
    return this.request('PUT', `/api/documents/${seg(collection)}/${seg(id)}`, { body: jsonText });
  }

  deleteDocument(collection, id) {
    return this.request('DELETE', `/api/documents/${seg(collection)}/${seg(id)}`);
  }

  query(text, take, options = {}) {
    return this.request('POST', '/api/query', { body: { Query: text, Take: take }, ...options });
  }

  // One page of live cache keys matching a glob (GET /api/cache, cache.md "Listing keys").
  cacheKeys(match, after, take) {
    return this.request('GET', '/api/cache', { query: { match: match || undefined, after: after || undefined, take } });
  }

  cacheGet(key) {
    return this.request('GET', `/api/cache/${seg(key)}`);
  }

  cacheSet(key, jsonText, ttl) {
    return this.request('PUT', `/api/cache/${seg(key)}`, { body: jsonText, query: { ttl } });
  }

  cacheDelete(key) {
    return this.request('DELETE', `/api/cache/${seg(key)}`);
  }
}

function fail(status, error, ms) {
  return { ok: false, status, body: null, text: '', error, ms };
}
