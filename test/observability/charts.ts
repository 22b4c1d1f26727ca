/**
 * Draws a Grafana dashboard's panels from query results as one self-contained HTML page of
 * inline SVG (no script, no external asset): time series with axes, grid, legend, thresholds and
 * stepped or filled lines; stat panels with a sparkline and threshold colours; state timelines.
 * Pure: data in, markup out. Used by render-dashboard.ts to make docs/dashboard.png.
 */
import type { Dashboard, Panel } from './dashboards.js';

export interface Series {
  name: string;
  /** [unix seconds, value]; NaN for gaps (histogram_quantile of no traffic, absent samples). */
  points: Array<[number, number]>;
}

export interface PanelData {
  panel: Panel;
  series: Series[];
}

const PALETTE = [
  '#7EB26D',
  '#EAB839',
  '#6ED0E0',
  '#EF843C',
  '#E24D42',
  '#1F78C1',
  '#BA43A9',
  '#705DA0',
  '#508642',
  '#CCA300',
  '#447EBC',
  '#C15C17',
]; // Grafana's classic palette
const COLORS: Record<string, string> = {
  green: '#73BF69',
  red: '#F2495C',
  orange: '#FF9830',
  yellow: '#FADE2A',
  blue: '#5794F2',
  transparent: 'transparent',
};
const color = (c: string | undefined) => (c === undefined ? '#8e8e8e' : (COLORS[c] ?? c));
const esc = (s: string) => s.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]!);

/** A value in the panel's Grafana unit, as Grafana would print it. */
export function formatValue(v: number, unit: string | undefined, decimals?: number): string {
  if (!Number.isFinite(v)) return 'No data';
  const fixed = (x: number, d = decimals ?? (Math.abs(x) >= 100 || Number.isInteger(x) ? 0 : Math.abs(x) >= 10 ? 1 : 2)) => x.toFixed(d);
  switch (unit) {
    case 'percentunit':
      return `${fixed(v * 100, decimals ?? (v * 100 >= 10 || v === 0 ? 0 : 1))}%`;
    case 'reqps':
      return `${short(v, fixed)} req/s`;
    case 'ops':
      return `${short(v, fixed)} ops/s`;
    case 's':
      if (v === 0) return '0 s';
      if (Math.abs(v) < 1) return `${fixed(v * 1000)} ms`;
      if (Math.abs(v) < 60) return `${fixed(v)} s`;
      return `${fixed(v / 60, 1)} min`;
    case 'bytes': {
      const units = ['B', 'KiB', 'MiB', 'GiB'];
      let i = 0;
      while (Math.abs(v) >= 1024 && i < units.length - 1) {
        v /= 1024;
        i++;
      }
      return `${fixed(v)} ${units[i]}`;
    }
    default:
      return short(v, fixed);
  }
}

function short(v: number, fixed: (x: number) => string): string {
  if (Math.abs(v) >= 1e6) return `${fixed(v / 1e6)} M`;
  if (Math.abs(v) >= 1e3) return `${fixed(v / 1e3)} K`;
  return fixed(v);
}

/** 1, 2, 2.5 or 5 times a power of ten: a tick step that gives about `count` ticks. */
function niceStep(range: number, count: number): number {
  const raw = range / count;
  const power = 10 ** Math.floor(Math.log10(raw));
  return [1, 2, 2.5, 5, 10].map((m) => m * power).find((s) => s >= raw)!;
}

const clock = (t: number) => new Date(t * 1000).toISOString().slice(11, 19);

interface Box {
  w: number;
  h: number;
}

function timeseries(d: PanelData, box: Box, from: number, to: number): string {
  const defaults = d.panel.fieldConfig?.defaults ?? {};
  const custom = defaults.custom ?? {};
  const unit: string | undefined = defaults.unit;
  const legendRows = Math.ceil(d.series.length / 3);
  const left = 72;
  const right = 12;
  const top = 8;
  const bottom = 22 + legendRows * 16;
  const pw = box.w - left - right;
  const ph = box.h - top - bottom;
  const values = d.series.flatMap((s) => s.points.map((p) => p[1])).filter(Number.isFinite);
  const steps: Array<{ color: string; value: number | null }> = defaults.thresholds?.steps ?? [];
  const thresholdLines = custom.thresholdsStyle?.mode === 'line' ? steps.filter((s) => s.value !== null) : [];
  const yMin = defaults.min ?? Math.min(0, ...values);
  let yMax = defaults.max ?? Math.max(...values, ...thresholdLines.map((s) => s.value!), yMin);
  if (yMax <= yMin) yMax = yMin + 1;
  const step = niceStep(yMax - yMin, 4);
  yMax = Math.ceil(yMax / step - 1e-9) * step;
  const x = (t: number) => left + ((t - from) / (to - from)) * pw;
  const y = (v: number) => top + ph - ((v - yMin) / (yMax - yMin)) * ph;
  const out: string[] = [];
  for (let v = yMin; v <= yMax + step / 2; v += step) {
    out.push(`<line x1="${left}" x2="${left + pw}" y1="${y(v)}" y2="${y(v)}" class="grid"/>`);
    out.push(`<text x="${left - 6}" y="${y(v) + 4}" class="tick" text-anchor="end">${esc(formatValue(v, unit))}</text>`);
  }
  const tStep = niceStep(to - from, 6);
  for (let t = Math.ceil(from / tStep) * tStep; t <= to; t += tStep) {
    out.push(`<line x1="${x(t)}" x2="${x(t)}" y1="${top}" y2="${top + ph}" class="grid"/>`);
    out.push(`<text x="${x(t)}" y="${top + ph + 15}" class="tick" text-anchor="middle">${clock(t)}</text>`);
  }
  for (const s of thresholdLines)
    out.push(
      `<line x1="${left}" x2="${left + pw}" y1="${y(s.value!)}" y2="${y(s.value!)}" stroke="${color(s.color)}" stroke-dasharray="6 4" stroke-width="1.5"/>`,
    );
  d.series.forEach((s, i) => {
    const c = PALETTE[i % PALETTE.length]!;
    for (const run of runs(s.points)) {
      const pts: string[] = [];
      run.forEach(([t, v], j) => {
        if (custom.lineInterpolation === 'stepAfter' && j > 0) pts.push(`${x(t)},${y(run[j - 1]![1])}`);
        pts.push(`${x(t)},${y(v)}`);
      });
      const fill = Number(custom.fillOpacity ?? 0) / 100;
      if (fill > 0)
        out.push(
          `<polygon points="${x(run[0]![0])},${y(yMin)} ${pts.join(' ')} ${x(run.at(-1)![0])},${y(yMin)}" fill="${c}" fill-opacity="${fill}"/>`,
        );
      out.push(`<polyline points="${pts.join(' ')}" fill="none" stroke="${c}" stroke-width="${custom.lineWidth ?? 1.5}"/>`);
    }
  });
  out.push(
    `<line x1="${left}" x2="${left}" y1="${top}" y2="${top + ph}" class="axis"/><line x1="${left}" x2="${left + pw}" y1="${top + ph}" y2="${top + ph}" class="axis"/>`,
  );
  d.series.forEach((s, i) => {
    const lx = left + (i % 3) * (pw / 3);
    const ly = top + ph + 32 + Math.floor(i / 3) * 16;
    out.push(`<rect x="${lx}" y="${ly - 8}" width="14" height="4" rx="1" fill="${PALETTE[i % PALETTE.length]}"/>`);
    out.push(`<text x="${lx + 20}" y="${ly - 2}" class="legend">${esc(s.name)}</text>`);
  });
  if (d.series.length === 0) out.push(`<text x="${left + pw / 2}" y="${top + ph / 2}" class="nodata" text-anchor="middle">No data</text>`);
  return svg(box, out);
}

/** Consecutive finite points: a gap (NaN or a missing step) breaks the line, as in Grafana. */
function runs(points: Array<[number, number]>): Array<Array<[number, number]>> {
  const out: Array<Array<[number, number]>> = [];
  let current: Array<[number, number]> = [];
  for (const p of points) {
    if (Number.isFinite(p[1])) current.push(p);
    else if (current.length > 0) {
      out.push(current);
      current = [];
    }
  }
  if (current.length > 0) out.push(current);
  return out;
}

function mapped(defaults: any, v: number): { text?: string; color?: string } | undefined {
  for (const m of defaults.mappings ?? []) if (m.type === 'value' && m.options?.[String(v)]) return m.options[String(v)];
  return undefined;
}

function thresholdColor(defaults: any, v: number): string {
  let c = 'green';
  for (const s of defaults.thresholds?.steps ?? []) if (s.value === null || v >= s.value) c = s.color;
  return color(c);
}

function stat(d: PanelData, box: Box): string {
  const defaults = d.panel.fieldConfig?.defaults ?? {};
  const s = d.series[0];
  const finite = s?.points.filter((p) => Number.isFinite(p[1])) ?? [];
  const last = finite.at(-1)?.[1] ?? NaN;
  const map = Number.isFinite(last) ? mapped(defaults, last) : undefined;
  const text = map?.text ?? formatValue(last, defaults.unit, defaults.decimals);
  const bg = Number.isFinite(last) ? (color(map?.color) !== '#8e8e8e' ? color(map?.color) : thresholdColor(defaults, last)) : '#3d3d3d';
  const out = [`<rect x="0" y="0" width="${box.w}" height="${box.h}" rx="2" fill="${bg}" fill-opacity="0.85"/>`];
  if (finite.length > 1) {
    const vs = finite.map((p) => p[1]);
    const lo = Math.min(...vs);
    const hi = Math.max(...vs) > lo ? Math.max(...vs) : lo + 1;
    const t0 = finite[0]![0];
    const t1 = finite.at(-1)![0];
    const pts = finite.map(([t, v]) => `${((t - t0) / (t1 - t0 || 1)) * box.w},${box.h - 4 - ((v - lo) / (hi - lo)) * box.h * 0.4}`);
    out.push(`<polygon points="0,${box.h} ${pts.join(' ')} ${box.w},${box.h}" fill="#ffffff" fill-opacity="0.18"/>`);
  }
  out.push(`<text x="${box.w / 2}" y="${box.h / 2 + 4}" class="stat" text-anchor="middle" dominant-baseline="middle">${esc(text)}</text>`);
  return svg(box, out);
}

function stateTimeline(d: PanelData, box: Box, from: number, to: number): string {
  const defaults = d.panel.fieldConfig?.defaults ?? {};
  const left = 110;
  const bottom = 22;
  const pw = box.w - left - 12;
  const rowH = (box.h - bottom - 8) / Math.max(d.series.length, 1);
  const x = (t: number) => left + ((t - from) / (to - from)) * pw;
  const out: string[] = [];
  d.series.forEach((s, i) => {
    const y = 8 + i * rowH;
    out.push(`<text x="${left - 8}" y="${y + rowH / 2 + 4}" class="tick" text-anchor="end">${esc(s.name)}</text>`);
    out.push(`<rect x="${left}" y="${y + rowH * 0.1}" width="${pw}" height="${rowH * 0.8}" fill="#2a2d33"/>`);
    // One bar per run of equal values (Grafana's mergeValues).
    const colorAt = (v: number) => {
      const m = Number.isFinite(v) ? mapped(defaults, v) : undefined;
      return m?.color !== undefined ? color(m.color) : v >= 1 ? '#73BF69' : 'transparent';
    };
    let runStart = 0;
    s.points.forEach(([, v], j) => {
      const next = s.points[j + 1];
      if (next !== undefined && colorAt(next[1]) === colorAt(v)) return;
      const c = colorAt(v);
      const x0 = x(s.points[runStart]![0]);
      const x1 = x(next?.[0] ?? to);
      if (c !== 'transparent')
        out.push(`<rect x="${x0}" y="${y + rowH * 0.1}" width="${Math.max(x1 - x0, 1)}" height="${rowH * 0.8}" fill="${c}"/>`);
      runStart = j + 1;
    });
  });
  const tStep = niceStep(to - from, 6);
  for (let t = Math.ceil(from / tStep) * tStep; t <= to; t += tStep) {
    out.push(`<text x="${x(t)}" y="${box.h - 6}" class="tick" text-anchor="middle">${clock(t)}</text>`);
  }
  return svg(box, out);
}

const svg = (box: Box, parts: string[]) =>
  `<svg width="${box.w}" height="${box.h}" viewBox="0 0 ${box.w} ${box.h}" xmlns="http://www.w3.org/2000/svg">${parts.join('')}</svg>`;

const CSS = `
body{margin:0;background:#111217;color:#ccccdc;font-family:"Liberation Sans","DejaVu Sans",Arial,sans-serif}
header{display:flex;align-items:baseline;gap:16px;padding:14px 16px 6px}
h1{font-size:20px;font-weight:500;margin:0;color:#d8d9da}
.sub{font-size:12px;color:#8e8e8e}
.vars{padding:0 16px 8px;font-size:12px}.vars span{background:#22252b;border:1px solid #34373d;padding:3px 8px;margin-right:6px;border-radius:2px}
.grid-area{position:relative;margin:0 8px}
.panel{position:absolute;background:#181b1f;border:1px solid #2c3035;border-radius:2px;box-sizing:border-box;overflow:hidden}
.panel h2{font-size:13px;font-weight:500;margin:0;padding:6px 8px 4px;color:#ccccdc;white-space:nowrap;overflow:hidden;text-overflow:ellipsis}
.grid{stroke:#2c3035;stroke-width:1}.axis{stroke:#464c54;stroke-width:1}
.tick{fill:#9fa7b3;font-size:10.5px}.legend{fill:#ccccdc;font-size:11px}.nodata{fill:#8e8e8e;font-size:14px}
.stat{fill:#fff;font-size:30px;font-weight:500}`;

/** The whole dashboard as an HTML page `width` pixels wide, laid out on Grafana's 24-column grid. */
export function dashboardHtml(
  dashboard: Dashboard,
  data: PanelData[],
  options: { from: number; to: number; width: number; subtitle: string; variables: Record<string, string> },
): string {
  const { from, to, width } = options;
  const col = (width - 16) / 24;
  const row = 34;
  const gap = 6;
  const panels = data.map((d) => {
    const g = d.panel.gridPos;
    const box = { w: g.w * col - gap, h: g.h * row - gap };
    const body = { w: box.w - 2, h: box.h - 28 };
    const chart =
      d.panel.type === 'stat'
        ? stat(d, { w: body.w - 8, h: body.h - 6 })
        : d.panel.type === 'state-timeline'
          ? stateTimeline(d, body, from, to)
          : timeseries(d, body, from, to);
    const inner = d.panel.type === 'stat' ? `<div style="padding:0 4px">${chart}</div>` : chart;
    return `<div class="panel" style="left:${g.x * col}px;top:${g.y * row}px;width:${box.w}px;height:${box.h}px"><h2>${esc(d.panel.title)}</h2>${inner}</div>`;
  });
  const height = Math.max(...data.map((d) => (d.panel.gridPos.y + d.panel.gridPos.h) * row)) + 8;
  const vars = Object.entries(options.variables)
    .map(([k, v]) => `<span>${esc(k)} = ${esc(v)}</span>`)
    .join('');
  return `<!doctype html><html><head><meta charset="utf-8"><style>${CSS}</style></head><body>
<header><h1>${esc(dashboard.title)}</h1><div class="sub">${esc(options.subtitle)}</div></header>
<div class="vars">${vars}</div>
<div class="grid-area" style="height:${height}px">${panels.join('\n')}</div></body></html>`;
}
