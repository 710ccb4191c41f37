// The training-time metrics of several run directories in one plot: a metric
// that `train --metrics` logged (stats.jsonl) against kimg and against the
// runs' training minutes, one curve per run, PNG. For runs that were not made
// by the quality study (e.g. the GPU check's emoji runs), so they can be
// compared the way the study compares its configurations.
//
// Training minutes leave the metric evaluations out (bench/run-stats.ts).
//
//   node dist/bench/plot-runs.js --runs "full images=DIR1,real_p 0.5=DIR2" --metric swd --out PREFIX
//        [--title T] [--floor F]
// writes PREFIX-<metric>-vs-minutes.png and PREFIX-<metric>-vs-kimg.png and prints the points.
import { join } from 'node:path';
import { writeLinePlot, type Series } from '../src/io/plot.js';
import { benchMain, labelledList, parseOptions, UsageError, type OptionSpec } from './common.js';
import { metricCurve, readStats, type CurvePoint } from './run-stats.js';

const SPEC: Record<string, OptionSpec> = {
  runs: { type: 'string', help: 'label=run directory, comma-separated (a label may hold spaces)' },
  metric: { type: 'string', default: 'swd', help: 'the metric, as train --metrics logged it (swd, fd-classifier, ...)' },
  out: { type: 'string', help: 'path prefix of the two PNGs' },
  title: { type: 'string', default: '', help: 'plot title (default: the metric)' },
  floor: { type: 'number', help: 'draw the real-data floor at this value' },
};

const COLOURS = ['#1f77b4', '#d62728', '#2ca02c', '#9467bd', '#ff7f0e', '#8c564b'];

benchMain('plot-runs', async () => {
  const o = parseOptions(process.argv.slice(2), SPEC, 'node dist/bench/plot-runs.js --runs "a=DIR,b=DIR" --metric swd --out PREFIX');
  if (typeof o.runs !== 'string' || typeof o.out !== 'string') throw new UsageError('--runs and --out are required');
  const metric = o.metric as string;
  const runs = labelledList(o.runs, '--runs', 'directory').map(({ label, value }) => ({ label, dir: value }));
  const curves = runs.map((r, i) => {
    const points = metricCurve(readStats(r.dir), metric);
    if (!points.length) throw new UsageError(`${join(r.dir, 'stats.jsonl')}: no Metrics/${metric} entries (train with --metrics ${metric})`);
    return { ...r, points, colour: COLOURS[i % COLOURS.length]! };
  });
  for (const c of curves) {
    console.log(`${c.label} (${c.dir}):`);
    for (const p of c.points) console.log(`  kimg ${p.kimg.toFixed(1).padStart(7)}  training min ${p.trainingMinutes.toFixed(2).padStart(6)}  ${metric} ${p.value.toFixed(2)}`);
  }
  const title = (o.title as string) || metric;
  for (const axis of ['minutes', 'kimg'] as const) {
    const x = (p: CurvePoint) => (axis === 'minutes' ? p.trainingMinutes : p.kimg);
    const series: Series[] = curves.map((c) => ({ label: c.label, x: c.points.map(x), y: c.points.map((p) => p.value), color: c.colour }));
    if (typeof o.floor === 'number') {
      const xs = series.flatMap((s) => s.x);
      series.push({ label: 'real-data floor', x: [Math.min(...xs), Math.max(...xs)], y: [o.floor, o.floor], color: '#7f7f7f' });
    }
    const file = `${o.out}-${metric}-vs-${axis}.png`;
    await writeLinePlot(file, series, { title, xLabel: axis === 'minutes' ? 'training minutes (evaluations excluded)' : 'kimg', yLabel: metric });
    console.log(`wrote ${file}`);
  }
});
