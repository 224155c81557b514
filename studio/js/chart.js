// A small latency chart (inline SVG): HTTP and WebSocket probe durations over the history the
// node keeps (up to 60 minutes). Drawn from numbers only; labels are text nodes.

import { svg, formatMs } from './dom.js';

const W = 280;
const H = 72;
const PAD = { l: 46, r: 6, t: 6, b: 14 };

/**
 * history: [{TimestampUtc, HttpDurationMs, WebSocketDurationMs}], oldest first.
 * Returns an <svg> element with one polyline per series and the axis range as labels.
 */
export function latencyChart(history, attrs = {}) {
  const pts = (Array.isArray(history) ? history : [])
    .map((s) => ({
      t: Date.parse(s && s.TimestampUtc),
      http: num(s && s.HttpDurationMs),
      ws: num(s && s.WebSocketDurationMs),
    }))
    .filter((p) => Number.isFinite(p.t))
    .sort((a, b) => a.t - b.t);
  const el = svg('svg', {
    class: 'chart', viewBox: `0 0 ${W} ${H}`, width: W, height: H, role: 'img',
    'aria-label': `Probe latency, ${pts.length} samples`, ...attrs,
  });
  el.append(svg('rect', { x: PAD.l, y: PAD.t, width: W - PAD.l - PAD.r,
    height: H - PAD.t - PAD.b, class: 'chart-frame' }));
  if (!pts.length) {
    el.append(svg('text', { x: W / 2, y: H / 2, 'text-anchor': 'middle', class: 'chart-label' },
      'no samples yet'));
    return el;
  }
  // A sample with neither duration is a failed round: a red tick on the time axis.
  const failed = pts.filter((p) => p.http === null && p.ws === null);
  const values = pts.flatMap((p) => [p.http, p.ws]).filter((v) => v !== null);
  const max = Math.max(1, ...values);
  const t0 = pts[0].t;
  const t1 = Math.max(pts[pts.length - 1].t, t0 + 1);
  const x = (t) => PAD.l + ((t - t0) / (t1 - t0)) * (W - PAD.l - PAD.r);
  const y = (v) => H - PAD.b - (v / max) * (H - PAD.t - PAD.b);
  for (const [key, cls] of [['http', 'chart-http'], ['ws', 'chart-ws']]) {
    const line = pts.filter((p) => p[key] !== null)
      .map((p) => `${x(p.t).toFixed(1)},${y(p[key]).toFixed(1)}`);
    if (line.length === 1) {
      const [cx, cy] = line[0].split(',');
      el.append(svg('circle', { cx, cy, r: 2.5, class: cls }));
    } else if (line.length > 1) {
      el.append(svg('polyline', { points: line.join(' '), class: cls, fill: 'none' }));
    }
  }
  for (const p of failed)
    el.append(svg('line', { x1: x(p.t), x2: x(p.t), y1: H - PAD.b, y2: H - PAD.b - 6,
      class: 'chart-fail' }));
  el.append(
    svg('text', { x: PAD.l - 3, y: PAD.t + 8, 'text-anchor': 'end', class: 'chart-label' },
      formatMs(max)),
    svg('text', { x: PAD.l - 3, y: H - PAD.b, 'text-anchor': 'end', class: 'chart-label' }, '0'),
    svg('text', { x: PAD.l, y: H - 2, class: 'chart-label' }, span(t1 - t0)),
  );
  return el;
}

function num(v) {
  return typeof v === 'number' && Number.isFinite(v) ? v : null;
}

function span(ms) {
  const s = Math.round(ms / 1000);
  return s < 120 ? `last ${s}s` : `last ${Math.round(s / 60)} min`;
}
