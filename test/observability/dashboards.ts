/**
 * Grafana dashboards as data: load every JSON in grafana/dashboards, check the shape Grafana
 * needs to import it, expand its template variables and pull the metric names out of each
 * PromQL expression, so a test can hold them against what a running proxy really exports.
 */
import fs from 'node:fs';
import path from 'node:path';
import { REPO } from './prometheus-server.js';

export const DASHBOARD_DIR = path.join(REPO, 'grafana/dashboards');
export const DATASOURCE_DIR = path.join(REPO, 'grafana/provisioning/datasources');

export interface Target {
  refId: string;
  expr: string;
  legendFormat?: string;
}

export interface Panel {
  id: number;
  type: string;
  title: string;
  description?: string;
  gridPos: { x: number; y: number; w: number; h: number };
  datasource?: { type?: string; uid?: string };
  fieldConfig?: any;
  options?: any;
  targets: Target[];
}

export interface Dashboard {
  uid: string;
  title: string;
  schemaVersion: number;
  panels: Panel[];
  templating?: { list: Array<{ name: string; type: string; query?: unknown; definition?: string; allValue?: string }> };
}

export function loadDashboards(dir = DASHBOARD_DIR): Array<{ file: string; dashboard: unknown }> {
  return fs
    .readdirSync(dir)
    .filter((f) => f.endsWith('.json'))
    .sort()
    .map((f) => ({ file: path.join(dir, f), dashboard: JSON.parse(fs.readFileSync(path.join(dir, f), 'utf8')) as unknown }));
}

/** The uids of the provisioned datasources (a flat `uid:` key per datasource in each YAML file). */
export function provisionedDatasourceUids(dir = DATASOURCE_DIR): Set<string> {
  const uids = new Set<string>();
  for (const f of fs.readdirSync(dir).filter((f) => /\.ya?ml$/.test(f))) {
    for (const m of fs.readFileSync(path.join(dir, f), 'utf8').matchAll(/^\s*uid:\s*['"]?([\w-]+)['"]?\s*$/gm)) uids.add(m[1]!);
  }
  return uids;
}

/** Panels in display order, the panels of collapsed rows included. */
export function panelsOf(dashboard: Dashboard): Panel[] {
  return dashboard.panels.flatMap((p: any) => (p.type === 'row' ? (p.panels ?? []) : [p]));
}

const PANEL_TYPES = new Set(['timeseries', 'stat', 'gauge', 'bargauge', 'table', 'state-timeline', 'status-history', 'heatmap', 'text']);
const BUILTIN_VARIABLES = new Set(['__rate_interval', '__interval', '__interval_ms', '__range', '__range_s', '__range_ms']);
const GRID_WIDTH = 24;

/** Everything that keeps `value` from being a dashboard Grafana provisions and draws; [] when none. */
export function dashboardProblems(value: unknown, datasourceUids: ReadonlySet<string>): string[] {
  const problems: string[] = [];
  const d = value as Partial<Dashboard> | null;
  if (typeof d !== 'object' || d === null) return ['not a JSON object'];
  if (typeof d.title !== 'string' || d.title.trim() === '') problems.push('title: missing');
  if (typeof d.uid !== 'string' || !/^[A-Za-z0-9_-]{1,40}$/.test(d.uid))
    problems.push(`uid: ${JSON.stringify(d.uid)} is not 1-40 characters of [A-Za-z0-9_-]`);
  if (!Number.isInteger(d.schemaVersion) || d.schemaVersion! < 36)
    problems.push(`schemaVersion: ${JSON.stringify(d.schemaVersion)} (an integer >= 36, Grafana 9+)`);
  if (!Array.isArray(d.panels) || d.panels.length === 0) return [...problems, 'panels: missing or empty'];
  const variables = new Set((d.templating?.list ?? []).map((v) => v.name));
  const ids = new Set<number>();
  const placed: Array<{ title: string; x: number; y: number; w: number; h: number }> = [];
  for (const [i, p] of panelsOf(d as Dashboard).entries()) {
    const where = `panel ${i} (${JSON.stringify(p?.title)})`;
    if (!Number.isInteger(p.id) || ids.has(p.id)) problems.push(`${where}: id ${p.id} missing or repeated`);
    ids.add(p.id);
    if (!PANEL_TYPES.has(p.type)) problems.push(`${where}: type ${JSON.stringify(p.type)} unknown`);
    if (typeof p.title !== 'string' || p.title.trim() === '') problems.push(`${where}: title missing`);
    const g = p.gridPos;
    if (!g || ![g.x, g.y, g.w, g.h].every((n) => Number.isInteger(n) && n >= 0) || g.w < 1 || g.h < 1 || g.x + g.w > GRID_WIDTH) {
      problems.push(`${where}: gridPos ${JSON.stringify(g)} is not inside the ${GRID_WIDTH}-column grid`);
    } else {
      const overlap = placed.find((o) => g.x < o.x + o.w && o.x < g.x + g.w && g.y < o.y + o.h && o.y < g.y + g.h);
      if (overlap) problems.push(`${where}: gridPos overlaps panel ${JSON.stringify(overlap.title)}`);
      placed.push({ title: p.title, ...g });
    }
    if (!Array.isArray(p.targets) || p.targets.length === 0) {
      problems.push(`${where}: targets missing or empty`);
      continue;
    }
    const refIds = new Set<string>();
    for (const t of p.targets) {
      if (typeof t.expr !== 'string' || t.expr.trim() === '') problems.push(`${where}: target ${t.refId} has no expr`);
      if (typeof t.refId !== 'string' || refIds.has(t.refId)) problems.push(`${where}: refId ${t.refId} missing or repeated`);
      refIds.add(t.refId);
      const uid = (t as { datasource?: { uid?: string } }).datasource?.uid ?? p.datasource?.uid;
      if (uid === undefined || !datasourceUids.has(uid))
        problems.push(`${where}: datasource uid ${JSON.stringify(uid)} is not provisioned (${[...datasourceUids].join(', ')})`);
      for (const m of (t.expr ?? '').matchAll(/\$\{?(\w+)/g)) {
        if (!variables.has(m[1]!) && !BUILTIN_VARIABLES.has(m[1]!))
          problems.push(`${where}: expr uses $${m[1]}, which is neither a template variable nor built in`);
      }
    }
  }
  return problems;
}

/**
 * Grafana's interpolation for the variables our dashboards use: `$__rate_interval` and friends
 * become `rateInterval`, each template variable its value (a multi-value "All" is the variable's
 * allValue, a regex, as Grafana sends it).
 */
export function expandVariables(expr: string, values: { rateInterval: string; variables: Record<string, string> }): string {
  return expr.replace(/\$\{?(\w+)\}?/g, (whole, name: string) => {
    if (BUILTIN_VARIABLES.has(name)) return values.rateInterval;
    const value = values.variables[name];
    if (value === undefined) throw new Error(`no value for the variable ${whole} in ${expr}`);
    return value;
  });
}

const NOT_METRICS = new Set([
  'by',
  'without',
  'on',
  'ignoring',
  'group_left',
  'group_right',
  'bool',
  'offset',
  'and',
  'or',
  'unless',
  'inf',
  'nan',
  'atan2',
]);

/**
 * The metric names a PromQL expression selects. Strings, label matchers (`{...}`), label lists
 * (`by (...)`, `on (...)`, ...), ranges and subqueries (`[...]`) are removed first; what remains is
 * functions (an identifier followed by `(`), keywords, numbers, and metric names.
 */
export function metricNames(expr: string): string[] {
  const stripped = expr
    .replace(/\$\{?\w+\}?/g, '1m')
    .replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`/g, '""')
    .replace(/\{[^{}]*\}/g, ' ')
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)/gi, ' ')
    .replace(/\[[^\]]*\]/g, ' ')
    .replace(/#[^\n]*/g, ' ');
  const names = new Set<string>();
  for (const m of stripped.matchAll(/(?<![\w.:])([A-Za-z_:][\w:]*)(?![\w:])(?!\s*\()/g)) {
    const name = m[1]!;
    if (NOT_METRICS.has(name.toLowerCase())) continue;
    names.add(name);
  }
  return [...names];
}

/** Grafana's legend: `{{label}}` replaced by the series' label values. */
export function legendFor(format: string | undefined, labels: Record<string, string>): string {
  if (!format || format === '__auto') {
    const { __name__, ...rest } = labels;
    const inner = Object.entries(rest)
      .map(([k, v]) => `${k}="${v}"`)
      .join(', ');
    return `${__name__ ?? ''}{${inner}}`;
  }
  return format.replace(/\{\{\s*(\w+)\s*\}\}/g, (_, k: string) => labels[k] ?? '');
}
