// Node dashboard (GET /dashboard/api/overview): the node, every peer online or not with its
// HTTP and WebSocket probe latency and their recent history, each database with its size,
// op-log length and per-peer replication (checkpoints, ops behind, last error, next retry).
// Refreshes itself every few seconds while it is shown and the tab is visible.

import { h, replace, formatBytes, formatDuration, formatMs, timeCell } from '../dom.js';
import { latencyChart } from '../chart.js';
import { badge, noticeArea } from '../ui.js';

export const title = 'Dashboard';

const REFRESH_MS = 3000;

export function mount(main, ctx) {
  const { client, profile } = ctx;
  let alive = true;
  let timer = null;
  let auto = true;
  let inFlight = false;

  const notice = noticeArea('dash-notice');
  const summary = h('div', { class: 'summary', 'data-testid': 'dash-summary' });
  const nodes = h('div', { 'data-testid': 'dash-nodes' });
  const peers = h('div', { class: 'peer-cards', 'data-testid': 'dash-peers' });
  const dbs = h('div', { 'data-testid': 'dash-databases' });
  const updated = h('span', { class: 'muted small', 'data-testid': 'dash-updated' });
  const autoBox = h('input', { type: 'checkbox', props: { checked: true }, 'data-testid': 'dash-auto' });
  autoBox.addEventListener('change', () => {
    auto = autoBox.checked;
    schedule();
  });

  replace(main, h('section', { class: 'page page-dashboard' },
    h('div', { class: 'toolbar' },
      h('h1', {}, 'Node dashboard'),
      h('span', { class: 'spacer' }),
      updated,
      h('label', { class: 'check' }, autoBox, ` refresh every ${REFRESH_MS / 1000} s`),
      h('button', { type: 'button', class: 'btn btn-small', 'data-testid': 'dash-refresh',
        on: { click: () => refresh() } }, 'Refresh')),
    notice.el, summary,
    h('h2', {}, 'Nodes'), nodes,
    h('h2', {}, 'Peer connections'), peers,
    h('h2', {}, 'Databases'), dbs));

  function schedule() {
    clearTimeout(timer);
    timer = null;
    if (alive && auto) timer = setTimeout(refresh, REFRESH_MS);
  }

  async function refresh() {
    if (!alive || inFlight) return;
    if (document.hidden) {
      schedule(); // nobody is looking: ask again later
      return;
    }
    inFlight = true;
    const r = await client.overview();
    inFlight = false;
    if (!alive) return;
    if (!r.ok) {
      notice.error(`${profile.url}: ${r.error}`);
      replace(updated, `failed at ${new Date().toLocaleTimeString()}`);
    } else {
      notice.clear();
      render(r.body || {});
      replace(updated, `updated ${new Date().toLocaleTimeString()}`);
    }
    schedule();
  }

  function render(o) {
    const stat = (label, value, id) => h('div', { class: 'card-stat', 'data-testid': id },
      h('div', { class: 'stat-label' }, label), h('div', { class: 'stat-value' }, value));
    replace(summary,
      stat('Node', o.NodeId ?? '—', 'dash-node-id'),
      stat('Uptime', formatDuration(o.UptimeSeconds), 'dash-uptime'),
      stat('Started', timeCell(o.StartedUtc), 'dash-started'),
      stat('Databases', String(Array.isArray(o.Databases) ? o.Databases.length : 0), 'dash-db-count'),
      stat('Divergences', String(o.DivergenceCount ?? 0), 'dash-divergences'),
      stat('Data', h('code', { title: o.NodeDataPath ?? '' }, o.DataRootPath ?? '—'), 'dash-data'));
    const nodeList = Array.isArray(o.Nodes) ? o.Nodes : [];
    // One source for a peer's online state: the Nodes probe result. The database links' own
    // IsOnline lags it by a replication round, and two tables must not disagree.
    const online = new Map(nodeList.filter((n) => n.NodeId).map((n) => [n.NodeId, nodeStatus(n)]));
    renderNodes(nodeList, o.NodeId);
    renderPeers(Array.isArray(o.PeerConnections) ? o.PeerConnections : [], online);
    renderDatabases(Array.isArray(o.Databases) ? o.Databases : [], online);
  }

  function nodeStatus(n) {
    return n.Status ?? (n.IsOnline ? 'Online' : 'Offline');
  }

  function probe(status, ms) {
    return h('span', { class: 'probe' }, badge(status), ' ', h('span', { class: 'muted' }, formatMs(ms)));
  }

  function renderNodes(list, self) {
    const rows = list.map((n) => h('tr', { 'data-testid': 'node-row', dataset: { node: n.NodeId ?? '' } },
      h('td', {}, h('strong', {}, n.NodeId ?? '?'),
        n.NodeId === self ? h('span', { class: 'tag' }, 'this node') : null),
      h('td', {}, h('code', {}, n.BaseUrl ?? '')),
      h('td', { 'data-testid': 'node-status' }, badge(nodeStatus(n))),
      h('td', {}, probe(n.HttpStatus, n.HttpProbeDurationMs)),
      h('td', {}, probe(n.WebSocketStatus, n.WebSocketProbeDurationMs)),
      h('td', { class: 'error-text' }, n.Error ?? ''),
      h('td', {}, timeCell(n.LastCheckedUtc))));
    replace(nodes, h('div', { class: 'table-scroll' }, h('table', { class: 'table' },
      h('thead', {}, h('tr', {}, ['Node', 'URL', 'Status', 'HTTP', 'WebSocket', 'Error', 'Checked']
        .map((t) => h('th', {}, t)))),
      h('tbody', {}, rows.length ? rows : h('tr', {}, h('td', { colspan: 7, class: 'muted' }, 'No nodes.'))))));
  }

  function renderPeers(list, online) {
    if (!list.length) {
      replace(peers, h('p', { class: 'muted' }, 'No peers: this node replicates with nobody. ',
        'Add one with POST /api/cluster/peers or Node.SeedPeers.'));
      return;
    }
    replace(peers, list.map((p) => h('div', { class: 'card peer-card', 'data-testid': 'peer-card',
      dataset: { peer: p.NodeId ?? '' } },
      h('div', { class: 'card-head' },
        h('strong', {}, p.NodeId ?? '?'),
        h('span', { 'data-testid': 'peer-status' },
          badge(online.get(p.NodeId) ?? p.OverallStatus ?? p.Status)),
        p.IsPeerActive === false ? h('span', { class: 'tag' }, 'inactive') : null),
      h('div', { class: 'muted small' }, h('code', {}, p.BaseUrl ?? '')),
      h('div', { class: 'probe-line' },
        h('span', {}, 'HTTP ', probe(p.HttpStatus, p.HttpProbeDurationMs)),
        h('span', {}, 'WS ', probe(p.WebSocketStatus, p.WebSocketProbeDurationMs))),
      latencyChart(p.LatencyHistory, { 'data-testid': 'peer-chart' }),
      h('div', { class: 'legend small' }, h('span', { class: 'key-http' }, 'HTTP'), ' ',
        h('span', { class: 'key-ws' }, 'WebSocket')),
      p.Error ? h('div', { class: 'error-text small', 'data-testid': 'peer-error' }, p.Error) : null)));
  }

  function renderDatabases(list, online) {
    if (!list.length) {
      replace(dbs, h('p', { class: 'muted' }, 'No databases this key can see.'));
      return;
    }
    replace(dbs, list.map((d) => {
      const file = d.DatabaseFile || {};
      const rp = Array.isArray(d.ReplicationPeers) ? d.ReplicationPeers : [];
      const peerRows = rp.map((p) => h('tr', { 'data-testid': 'repl-peer-row', dataset: { peer: p.PeerNodeId ?? '' } },
        h('td', {}, p.PeerNodeId ?? '?', p.IsActive === false ? h('span', { class: 'tag' }, 'inactive') : null),
        h('td', { 'data-testid': 'repl-link' }, badge(online.get(p.PeerNodeId) ??
          (p.IsOnline === undefined ? 'Unknown' : p.IsOnline ? 'Online' : 'Offline'))),
        h('td', {}, badge(p.CatchUpStatus)),
        h('td', { class: 'num', 'data-testid': 'repl-push' },
          `${p.LastPushedLocalLogSequence ?? '—'} / ${p.LocalMaxLogSequence ?? d.LocalMaxLogSequence ?? '—'}`),
        h('td', { class: 'num', 'data-testid': 'repl-pull' }, String(p.LastPulledPeerLogSequence ?? '—')),
        h('td', { class: 'num', 'data-testid': 'repl-pending' }, String(p.EstimatedPendingPushOperations ?? '—')),
        h('td', { class: 'num', 'data-testid': 'repl-behind' }, String(p.OpsBehind ?? '—')),
        h('td', { class: 'error-text', 'data-testid': 'repl-error' },
          p.LastError ?? '', p.ConsecutiveFailures ? ` (${p.ConsecutiveFailures} failures)` : ''),
        h('td', { 'data-testid': 'repl-retry' }, timeCell(p.NextRetryUtc)),
        h('td', {}, timeCell(p.LastSuccessUtc))));
      // A snapshot being loaded (docs/replication.md, "Snapshot bootstrap"): its progress.
      const snap = rp.map((p) => p.Snapshot).find((s) => s) ?? null;
      const snapLine = snap
        ? h('div', { class: 'snapshot-progress small', 'data-testid': 'db-snapshot' },
          `Loading a snapshot from ${snap.SourceNodeId}: `,
          h('progress', { max: String(Math.max(snap.RecordsTotal ?? 0, 1)), value: String(snap.RecordsDone ?? 0) }),
          ` ${(snap.RecordsDone ?? 0).toLocaleString()} of ${(snap.RecordsTotal ?? 0).toLocaleString()} records`,
          ` (${Math.round(snap.RecordsPerSecond ?? 0).toLocaleString()}/s)`)
        : null;
      return h('div', { class: 'card db-card', 'data-testid': 'db-card', dataset: { db: d.Name ?? '' } },
        h('div', { class: 'card-head' },
          h('strong', {}, d.Name ?? '?'), badge(d.Status),
          d.Error ? h('span', { class: 'error-text' }, d.Error) : null),
        h('div', { class: 'db-stats' },
          h('span', { 'data-testid': 'db-size' }, 'Size ', h('strong', {}, formatBytes(file.SizeBytes))),
          h('span', { 'data-testid': 'db-oplog' }, 'Op log ', h('strong', {}, String(d.LocalMaxLogSequence ?? '—'))),
          h('span', {}, 'Pending push ', h('strong', {}, String(d.TotalEstimatedPendingPushOperations ?? 0))),
          h('span', {}, 'Last write ', timeCell(file.LastWriteUtc)),
          // The storage bound (docs/replication.md, "Purging tombstones").
          d.OperationLogEntries !== undefined
            ? h('span', { 'data-testid': 'db-oplog-held' }, 'Log held ',
              h('strong', {}, `${d.OperationLogEntries} (${formatBytes(d.OperationLogBytes ?? 0)})`))
            : null,
          d.PurgeFloor !== undefined
            ? h('span', { 'data-testid': 'db-tombstones' }, 'Tombstones ',
              h('strong', {}, d.Tombstones === null ? '—' : String(d.Tombstones)))
            : null,
          d.PurgeFloor !== undefined
            ? h('span', { 'data-testid': 'db-purge-floor' }, 'Purge floor ',
              d.PurgeFloor === '0' ? h('strong', {}, 'none')
                : timeCell(new Date(Number(BigInt(d.PurgeFloor) >> 16n)).toISOString()))
            : null,
          d.ConflictRecords
            ? h('span', { 'data-testid': 'db-conflicts', class: 'error-text' }, 'Conflict records ',
              h('strong', {}, String(d.ConflictRecords)), ` (refused ${d.RefusedBelowFloor ?? 0})`)
            : null,
          d.LastPrune
            ? h('span', { 'data-testid': 'db-last-prune' }, 'Last prune ', timeCell(d.LastPrune.TimeUtc),
              ` (${d.LastPrune.EntriesRemoved} entries, ${d.LastPrune.TombstonesPurged} tombstones)`)
            : null,
          file.Path ? h('code', { class: 'small', title: file.Path }, file.Path) : null),
        snapLine,
        rp.length
          ? h('div', { class: 'table-scroll' }, h('table', { class: 'table' },
            h('thead', {}, h('tr', {}, ['Peer', 'Link', 'Catch-up', 'Pushed / local', 'Pulled',
              'Pending push', 'Ops behind', 'Last error', 'Next retry', 'Last success']
              .map((t) => h('th', {}, t)))),
            h('tbody', {}, peerRows)))
          : h('p', { class: 'muted small' }, 'No replication peers.'));
    }));
  }

  const onVisible = () => {
    if (!document.hidden && alive && auto) refresh();
  };
  document.addEventListener('visibilitychange', onVisible);
  refresh();
  return () => {
    alive = false;
    clearTimeout(timer);
    document.removeEventListener('visibilitychange', onVisible);
  };
}
