// Harness of the Studio's browser tests: real litedistd processes on free 127.0.0.1 ports with
// temporary data directories, and Debian's chromium driven by playwright-core. Every process
// started here is stopped by stopAll() (tests call it in after()), and by an exit hook if the
// test runner dies first. Every wait is bounded.

import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, mkdirSync, existsSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
export const REPO = resolve(here, '..', '..');
export const BIN_DIR = resolve(process.env.LD_BIN_DIR || join(REPO, 'build', 'bin'));
export const CHROMIUM = process.env.LD_CHROMIUM || '/usr/bin/chromium';
// The storage backend of every node, as the system tests take it (LD_STORAGE; default sqlite).
export const STORAGE = process.env.LD_STORAGE || 'sqlite';

const START_TIMEOUT_MS = 10000;
const STOP_TIMEOUT_MS = 10000;

const nodes = new Set();

/** A loopback port that was free a moment ago. */
export function freePort() {
  return new Promise((ok, fail) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', fail);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => ok(port));
    });
  });
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * Polls fn (sync or async) every `interval` ms until it returns a truthy value, for at most
 * `timeout` ms; returns that value or throws naming what was awaited.
 */
export async function waitFor(what, fn, { timeout = 10000, interval = 100 } = {}) {
  const end = Date.now() + timeout;
  let last;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
      last = v;
    } catch (e) {
      last = e;
    }
    if (Date.now() >= end) throw new Error(`timed out after ${timeout} ms waiting for ${what} (last: ${last})`);
    await sleep(interval);
  }
}

/**
 * Waits until a locator's text equals `expected` (a string) or matches it (a RegExp); on timeout
 * the error shows the last text seen, so a failure says what the page showed instead.
 */
export async function waitForText(what, locator, expected, opts = {}) {
  let seen;
  const ok = (t) => (expected instanceof RegExp ? expected.test(t) : t === expected);
  try {
    return await waitFor(what, async () => ok((seen = await locator.textContent())), opts);
  } catch (e) {
    throw new Error(`${e.message}; the text was ${JSON.stringify(seen)}`);
  }
}

/** One litedistd process with its own directory, config and log. */
export class Node {
  constructor(name, config, dir, port) {
    this.name = name;
    this.config = config;
    this.dir = dir;
    this.port = port;
    this.url = `http://127.0.0.1:${port}`;
    this.logPath = join(dir, 'litedistd.log');
    this.proc = null;
    this.exited = null;
  }

  async start() {
    const cfgPath = join(this.dir, 'litedist.json');
    writeFileSync(cfgPath, JSON.stringify(this.config, null, 2));
    const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('LITEDIST_')));
    const log = [];
    this.log = log;
    this.proc = spawn(join(BIN_DIR, 'litedistd'), ['--config', cfgPath], {
      cwd: this.dir, env, stdio: ['ignore', 'pipe', 'pipe'],
    });
    const keep = (chunk) => {
      log.push(chunk.toString());
      if (log.length > 2000) log.splice(0, log.length - 2000);
    };
    this.proc.stdout.on('data', keep);
    this.proc.stderr.on('data', keep);
    this.exited = new Promise((r) => this.proc.on('exit', (code, sig) => r({ code, sig })));
    nodes.add(this);
    let exitedEarly = null;
    this.exited.then((x) => {
      exitedEarly = x;
    });
    await waitFor(`${this.name} to answer /health`, async () => {
      if (exitedEarly) throw new Error(`${this.name} exited (${JSON.stringify(exitedEarly)}):\n${this.logTail()}`);
      const r = await fetch(`${this.url}/health`, { signal: AbortSignal.timeout(1000) });
      return r.status === 200;
    }, { timeout: START_TIMEOUT_MS, interval: 50 }).catch((e) => {
      throw new Error(`${e.message}\n${this.logTail()}`);
    });
    return this;
  }

  running() {
    return this.proc && this.proc.exitCode === null && this.proc.signalCode === null;
  }

  /** SIGTERM, then SIGKILL after STOP_TIMEOUT_MS. Resolves to the exit {code, sig}. */
  async stop() {
    if (!this.proc) return null;
    if (this.running()) {
      this.proc.kill('SIGTERM');
      const t = setTimeout(() => this.proc.kill('SIGKILL'), STOP_TIMEOUT_MS);
      const r = await this.exited;
      clearTimeout(t);
      nodes.delete(this);
      return r;
    }
    nodes.delete(this);
    return this.exited;
  }

  logTail(lines = 30) {
    const all = (this.log || []).join('').split('\n');
    return `--- last log lines of ${this.name} ---\n${all.slice(-lines).join('\n')}`;
  }

  /** A request straight to the node (not through the browser), to check what the Studio did. */
  async api(method, path, { db, body, key = 'root' } = {}) {
    const headers = { ApiKey: key, Accept: 'application/json' };
    if (db) headers.Database = db;
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    const r = await fetch(this.url + path, {
      method, headers, body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(10000),
    });
    const text = await r.text();
    let json = null;
    try {
      json = text ? JSON.parse(text) : null;
    } catch {
      json = null;
    }
    return { status: r.status, body: json, text };
  }
}

/** A temporary directory for one test run; removed by removeDir(). */
export function makeTempDir() {
  return mkdtempSync(join(tmpdir(), 'litedist-studio-'));
}

export function removeDir(dir) {
  if (dir && dir.includes('litedist-studio-')) rmSync(dir, { recursive: true, force: true });
}

/**
 * Starts one node named `name` under base/<name> on `port` (default: a free one). extra is
 * deep-merged into its config sections (Node, Studio...). Probes run every second so the
 * dashboard sees a peer come and go.
 */
export async function startNode(base, name, { port, extra = {} } = {}) {
  const dir = join(base, name);
  mkdirSync(dir, { recursive: true });
  const p = port || (await freePort());
  const config = {
    Node: {
      NodeId: name, ListenAddress: '127.0.0.1', Port: p, DataDirectory: join(dir, 'data'),
      PeerProbeIntervalSeconds: 1, LogLevel: 'info', ...(extra.Node || {}),
    },
    Storage: { Plugin: STORAGE, Sync: 'off' },
    ...Object.fromEntries(Object.entries(extra).filter(([k]) => k !== 'Node')),
  };
  return new Node(name, config, dir, p).start();
}

/** Starts named nodes that know each other as seed peers. */
export async function startCluster(base, names) {
  const ports = {};
  for (const n of names) ports[n] = await freePort();
  const started = [];
  for (const name of names) {
    const SeedPeers = names.filter((o) => o !== name).map((o) => ({
      NodeId: o, BaseUrl: `http://127.0.0.1:${ports[o]}`, IsActive: true,
    }));
    started.push(await startNode(base, name, { port: ports[name], extra: { Node: { SeedPeers } } }));
  }
  return started;
}

/** The problem with an exit a SIGTERM asked for ({code, sig} from stop()), or null: a clean stop
 * exits 0; anything else (writes left in flight, a sanitizer report, the SIGKILL after
 * STOP_TIMEOUT_MS) is a failure the test must not pass over, as the system tests' fixture says. */
export function unclean(node, exit) {
  if (!exit || (exit.code === 0 && !exit.sig)) return null;
  return `${node.name} did not stop cleanly on SIGTERM (${JSON.stringify(exit)}):\n${node.logTail()}`;
}

/** Stops every node still running; throws when one did not stop cleanly (after stopping all). */
export async function stopAll() {
  const all = [...nodes];
  const exits = await Promise.all(all.map((n) => n.stop()));
  const problems = all.map((n, i) => unclean(n, exits[i])).filter(Boolean);
  if (problems.length) throw new Error(problems.join('\n'));
}

// If the runner is killed or a test throws past after(), no litedistd outlives it.
process.on('exit', () => {
  for (const n of nodes) if (n.running()) n.proc.kill('SIGKILL');
});

/** The flags Chromium needs here: no sandbox (root in a container), no network of its own. */
export const CHROMIUM_ARGS = [
  '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
  '--disable-default-apps', '--disable-extensions', '--disable-quic', '--metrics-recording-only',
  '--no-default-browser-check', '--disable-features=Translate,MediaRouter,OptimizationHints',
];

export function checkPrerequisites() {
  const problems = [];
  if (!existsSync(join(BIN_DIR, 'litedistd'))) problems.push(`no litedistd in ${BIN_DIR}: build first or set LD_BIN_DIR`);
  if (!existsSync(CHROMIUM)) problems.push(`no ${CHROMIUM}: run scripts/deps.sh (Debian package chromium)`);
  if (!existsSync(join(here, 'node_modules', 'playwright-core')))
    problems.push('no tests/browser/node_modules: run scripts/deps.sh (npm ci in tests/browser)');
  return problems;
}

export function readText(path) {
  return readFileSync(path, 'utf8');
}
