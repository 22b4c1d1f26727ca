/** The report: Markdown tables (readable as they are in a terminal), medians over the rounds. */
import { max, median } from './stats.mjs';

const fmt = {
  rps: (v) => (Number.isFinite(v) ? Math.round(v).toLocaleString('en-US') : '–'),
  ms: (v) => (Number.isFinite(v) ? (v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2)) : '–'),
  mb: (v) => (Number.isFinite(v) ? (v / 1024).toFixed(0) : '–'),
  us: (v) => (Number.isFinite(v) ? v.toFixed(0) : '–'),
  cpu: (v) => (Number.isFinite(v) ? `${Math.round(v * 100)}%` : '–'),
  ratio: (v) => (Number.isFinite(v) ? `${v.toFixed(2)}×` : '–'),
};

/** CPU time per request: the cost of a proxy, whatever else competes for the cores. */
function withCpuPerRequest(runs) {
  return runs.map((r) => ({ ...r, cpuPerRequestUs: (r.cores / r.rps) * 1e6 }));
}

/** Per-round ratios a/b (runs of the same round ran next to each other), then their median. */
function ratio(a, b, key) {
  return median(a.runs.map((run, i) => (b.runs[i] ? run[key] / b.runs[i][key] : NaN)));
}

/** The highest RSS sampled in any of a proxy's runs. */
function maxRss(t) {
  return max(t.runs.map((r) => r.peakKiB));
}

function row(cells) {
  return `| ${cells.join(' | ')} |`;
}

/**
 * `results`: [{ scenario, targets: [{ label, runs: [{ rps, p50, p99, peakKiB, cores, errors }] }],
 * comparisons: [[labelA, labelB], ...] }] (measure.mjs makes the runs). A ratio row a / b follows
 * a scenario's figures for each of its comparisons.
 */
export function renderTable(results) {
  const lines = [
    row(['scenario', 'proxy', 'req/s', 'p50 ms', 'p99 ms', 'max RSS MB', 'CPU', 'CPU µs/req', 'errors']),
    row(['---', '---', '--:', '--:', '--:', '--:', '--:', '--:', '--:']),
  ];
  for (const { scenario, comparisons = [], ...entry } of results) {
    const targets = entry.targets.map((t) => ({ ...t, runs: withCpuPerRequest(t.runs) }));
    targets.forEach((t, i) => {
      const m = (key) => median(t.runs.map((r) => r[key]));
      const errors = t.runs.reduce((sum, r) => sum + r.errors, 0);
      lines.push(
        row([
          i === 0 ? scenario.title : '',
          t.label,
          fmt.rps(m('rps')),
          fmt.ms(m('p50')),
          fmt.ms(m('p99')),
          fmt.mb(maxRss(t)),
          fmt.cpu(m('cores')),
          fmt.us(m('cpuPerRequestUs')),
          String(errors),
        ]),
      );
    });
    const byLabel = new Map(targets.map((t) => [t.label, t]));
    for (const [a, b] of comparisons) {
      const ta = byLabel.get(a);
      const tb = byLabel.get(b);
      if (!ta || !tb) continue;
      lines.push(
        row([
          '',
          `*${a} / ${b}*`,
          fmt.ratio(ratio(ta, tb, 'rps')),
          fmt.ratio(ratio(ta, tb, 'p50')),
          fmt.ratio(ratio(ta, tb, 'p99')),
          fmt.ratio(maxRss(ta) / maxRss(tb)),
          fmt.ratio(ratio(ta, tb, 'cores')),
          fmt.ratio(ratio(ta, tb, 'cpuPerRequestUs')),
          '',
        ]),
      );
    }
  }
  return lines.join('\n');
}

/** The summary's rows per scenario: [name, the run's figure] (`maxRss`: the maximum over the runs). */
const SUMMARY = [
  ['req/s', 'rps'],
  ['p99', 'p99'],
  ['CPU µs/req', 'cpuPerRequestUs'],
  ['max RSS', 'maxRss'],
];

/**
 * The subject (puttu) against each reference side by side: one column per reference, one row per
 * scenario and figure, each cell subject / reference (the table's medians of per-round ratios;
 * max RSS: the ratio of the maxima). `results` entries carry `subject` and `references` (labels).
 */
export function renderSummary(results) {
  const columns = [...new Set(results.flatMap((r) => (r.subject ? r.references : [])))];
  const lines = [
    'puttu / each proxy (req/s above 1×: puttu faster; p99, CPU µs/req and max RSS below 1×: puttu lower)',
    '',
    row(['scenario', 'figure', ...columns.map((c) => `/ ${c}`)]),
    row(['---', '---', ...columns.map(() => '--:')]),
  ];
  for (const { scenario, subject, references = [], ...entry } of results) {
    if (!subject) continue;
    const byLabel = new Map(entry.targets.map((t) => [t.label, { ...t, runs: withCpuPerRequest(t.runs) }]));
    const a = byLabel.get(subject);
    SUMMARY.forEach(([name, key], i) => {
      const cells = columns.map((c) => {
        const b = references.includes(c) ? byLabel.get(c) : undefined;
        if (!a || !b) return '';
        return fmt.ratio(key === 'maxRss' ? maxRss(a) / maxRss(b) : ratio(a, b, key));
      });
      lines.push(row([i === 0 ? `${scenario.title}${subject === 'puttu' ? '' : ` (${subject})`}` : '', name, ...cells]));
    });
  }
  return lines.join('\n');
}

/**
 * The slow-instance scenario beyond wrk's corrected percentiles: the share of requests each
 * balancer sent to the slow instance, and plain per-request p50/p99 from the latency probe.
 */
export function slowShareNote({ scenario, targets }) {
  const m = (t, f) => median(t.runs.map(f));
  const lines = [
    `${scenario.title}: share of requests sent to the slow instance, and per-request latency (uncorrected, Node client, ${scenario.connections} conn):`,
  ];
  for (const t of targets) {
    const probe = t.runs.some((r) => r.probe)
      ? `; probe: ${Math.round(m(t, (r) => r.probe?.rps))} req/s, ${(100 * m(t, (r) => r.probe?.toSlow)).toFixed(1)}% to the slow instance, per-request p50 ${fmt.ms(m(t, (r) => r.probe?.p50))} ms, p99 ${fmt.ms(m(t, (r) => r.probe?.p99))} ms`
      : '';
    lines.push(`  ${t.label}: under wrk ${(100 * m(t, (r) => r.toSlow)).toFixed(1)}% to the slow instance${probe}`);
  }
  return lines.join('\n');
}

/** How much other processes disturbed the measured runs (a shared machine), and which runs. */
export function foreignNote(results, threshold) {
  const runs = results.flatMap((r) =>
    r.targets.flatMap((t) => t.runs.map((run, i) => ({ run, name: `${r.scenario.id} ${t.label} #${i + 1}` }))),
  );
  const all = runs.map(({ run }) => run.foreign);
  const retried = runs.filter(({ run }) => run.retries).length;
  const kept = runs.filter(({ run }) => run.foreign > threshold);
  const lines = [
    `CPU used by other processes during the measured runs: median ${Math.round(median(all) * 100)}% of a core, max ${Math.round(Math.max(...all) * 100)}%; ${retried} runs were repeated because others used more than ${Math.round(threshold * 100)}%`,
  ];
  if (kept.length > 0)
    lines.push(
      `WARNING: still disturbed after the retries: ${kept.map(({ run, name }) => `${name} (${Math.round(run.foreign * 100)}%)`).join(', ')}`,
    );
  return lines.join('\n');
}
