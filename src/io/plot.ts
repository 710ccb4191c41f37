// A minimal line plot rendered to PNG (an SVG drawn here, rasterised by sharp):
// enough for loss curves, without pulling a charting stack into the install.
import sharp from 'sharp';
import { writeFileAtomic } from './atomic.js';

export interface Series {
  label: string;
  x: number[];
  y: number[];
  color?: string;
}

const esc = (s: string) => s.replace(/[<>&"]/g, (c) => `&#${c.charCodeAt(0)};`);

function niceTicks(lo: number, hi: number, count = 5): number[] {
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? raw;
  const ticks: number[] = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + 1e-12; v += step) ticks.push(+v.toPrecision(12));
  return ticks;
}

export function linePlotSvg(series: Series[], o: { title: string; xLabel: string; yLabel: string; logY?: boolean; width?: number; height?: number }): string {
  const W = o.width ?? 720, H = o.height ?? 420, L = 70, R = 20, T = 40, B = 50;
  const fy = (v: number) => (o.logY ? Math.log10(Math.max(v, 1e-12)) : v);
  const xs = series.flatMap((s) => s.x), ys = series.flatMap((s) => s.y.map(fy)).filter(Number.isFinite);
  const [x0, x1] = [Math.min(...xs), Math.max(...xs)];
  // A margin of 5% above and below: a line at the extremes (a floor, the lowest point) stays off the frame.
  const [yMin, yMax] = [Math.min(...ys), Math.max(...ys)];
  const [y0, y1] = [yMin - 0.05 * (yMax - yMin), yMax + 0.05 * (yMax - yMin)];
  const sx = (v: number) => L + ((v - x0) / (x1 - x0 || 1)) * (W - L - R);
  const sy = (v: number) => H - B - ((fy(v) - y0) / (y1 - y0 || 1)) * (H - T - B);
  const parts = [`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif" font-size="12">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    `<text x="${W / 2}" y="22" text-anchor="middle" font-size="15">${esc(o.title)}</text>`,
    `<text x="${W / 2}" y="${H - 12}" text-anchor="middle">${esc(o.xLabel)}</text>`,
    `<text transform="translate(16 ${H / 2}) rotate(-90)" text-anchor="middle">${esc(o.yLabel)}${o.logY ? ' (log)' : ''}</text>`,
    `<rect x="${L}" y="${T}" width="${W - L - R}" height="${H - T - B}" fill="none" stroke="#444"/>`];
  for (const t of niceTicks(x0, x1)) parts.push(`<text x="${sx(t)}" y="${H - B + 16}" text-anchor="middle">${t}</text>`);
  for (const t of niceTicks(y0, y1)) {
    const v = o.logY ? 10 ** t : t;
    const y = H - B - ((t - y0) / (y1 - y0 || 1)) * (H - T - B);
    parts.push(`<line x1="${L}" x2="${W - R}" y1="${y}" y2="${y}" stroke="#ddd"/>`,
      `<text x="${L - 6}" y="${y + 4}" text-anchor="end">${+v.toPrecision(3)}</text>`);
  }
  const palette = ['#1f77b4', '#d62728', '#2ca02c', '#9467bd', '#ff7f0e'];
  series.forEach((s, k) => {
    const color = s.color ?? palette[k % palette.length];
    const pts = s.x.map((x, i) => `${sx(x).toFixed(1)},${sy(s.y[i]!).toFixed(1)}`).join(' ');
    // Points as dots too when there are few of them (a single measurement has no line to show it).
    if (s.x.length <= 60)
      s.x.forEach((x, i) => {
        if (Number.isFinite(s.y[i]!)) parts.push(`<circle cx="${sx(x).toFixed(1)}" cy="${sy(s.y[i]!).toFixed(1)}" r="3" fill="${color}"/>`);
      });
    parts.push(`<polyline fill="none" stroke="${color}" stroke-width="1.8" points="${pts}"/>`,
      `<text x="${W - R - 8}" y="${T + 18 + 16 * k}" text-anchor="end" fill="${color}">${esc(s.label)}</text>`);
  });
  parts.push('</svg>');
  return parts.join('\n');
}

export async function writeLinePlot(path: string, series: Series[], o: Parameters<typeof linePlotSvg>[1]): Promise<void> {
  writeFileAtomic(path, [await sharp(Buffer.from(linePlotSvg(series, o))).png().toBuffer()]);
}
