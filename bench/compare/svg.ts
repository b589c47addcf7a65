// A grouped horizontal bar chart of ops/s per workload and target, as a hand-written SVG
// (log scale: the workloads span three orders of magnitude).

import type { TargetName } from "./cluster.ts";

export interface Bar {
  target: TargetName;
  /** Median ops/s, or null when not measured. */
  value: number | null;
  /** Lowest and highest repeat, drawn as a whisker. */
  min?: number;
  max?: number;
}

const COLORS: Record<TargetName, string> = { direct: "#9e9e9e", nutcracker: "#3b6fb6", buncracker: "#e8871e", predixy: "#6a9f4f" };
const LABEL_WIDTH = 170;
const PLOT_WIDTH = 560;
const BAR = 11;
const GROUP_GAP = 12;
const TOP = 48;

const escape = (text: string): string => text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");

export function compact(n: number): string {
  if (n >= 1e6) return `${(n / 1e6).toFixed(2)}M`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(n >= 1e5 ? 0 : 1)}k`;
  return n.toFixed(0);
}

export function barChart(title: string, groups: Array<{ name: string; bars: Bar[] }>): string {
  const values = groups.flatMap((g) => g.bars.flatMap((b) => [b.value, b.min, b.max])).filter((v): v is number => typeof v === "number" && v > 0);
  const low = 10 ** Math.floor(Math.log10(Math.min(...values, 1e3)));
  const high = 10 ** Math.ceil(Math.log10(Math.max(...values, 1e4)));
  const x = (v: number): number => LABEL_WIDTH + (Math.log10(v / low) / Math.log10(high / low)) * PLOT_WIDTH;
  const targets = [...new Set(groups.flatMap((g) => g.bars.map((b) => b.target)))];
  const groupHeight = targets.length * BAR + GROUP_GAP;
  const height = TOP + groups.length * groupHeight + 30;
  const width = LABEL_WIDTH + PLOT_WIDTH + 80;
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif" font-size="11">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    `<text x="${width / 2}" y="16" text-anchor="middle" font-size="13" font-weight="bold">${escape(title)}</text>`,
  ];
  targets.forEach((target, i) => {
    const lx = LABEL_WIDTH + i * 130;
    out.push(`<rect x="${lx}" y="26" width="12" height="10" fill="${COLORS[target]}"/>`, `<text x="${lx + 16}" y="35">${target}</text>`);
  });
  const axisY = TOP + groups.length * groupHeight;
  for (let decade = low; decade <= high; decade *= 10) {
    for (const step of [1, 2, 5]) {
      const v = decade * step;
      if (v > high) break;
      const gx = x(v).toFixed(1);
      out.push(`<line x1="${gx}" y1="${TOP - 4}" x2="${gx}" y2="${axisY}" stroke="${step === 1 ? "#bbb" : "#eee"}"/>`);
      if (step === 1 || groups.length < 30) out.push(`<text x="${gx}" y="${axisY + 14}" text-anchor="middle" fill="#555">${compact(v)}</text>`);
    }
  }
  out.push(`<text x="${LABEL_WIDTH + PLOT_WIDTH / 2}" y="${axisY + 27}" text-anchor="middle" fill="#555">ops/s (log scale), median of repeats; whiskers: min..max</text>`);
  groups.forEach((group, g) => {
    const gy = TOP + g * groupHeight;
    out.push(`<text x="${LABEL_WIDTH - 6}" y="${gy + (targets.length * BAR) / 2 + 4}" text-anchor="end">${escape(group.name)}</text>`);
    targets.forEach((target, i) => {
      const bar = group.bars.find((b) => b.target === target);
      const by = gy + i * BAR;
      if (bar?.value == null) {
        out.push(`<text x="${LABEL_WIDTH + 4}" y="${by + BAR - 2}" fill="#999" font-size="9">${target}: not measured</text>`);
        return;
      }
      const bx = x(bar.value);
      out.push(`<rect x="${LABEL_WIDTH}" y="${by}" width="${(bx - LABEL_WIDTH).toFixed(1)}" height="${BAR - 2}" fill="${COLORS[target]}"/>`);
      if (bar.min !== undefined && bar.max !== undefined) {
        const mid = by + (BAR - 2) / 2;
        out.push(`<line x1="${x(bar.min).toFixed(1)}" y1="${mid}" x2="${x(bar.max).toFixed(1)}" y2="${mid}" stroke="#222"/>`);
      }
      out.push(`<text x="${(Math.max(bx, bar.max ? x(bar.max) : bx) + 4).toFixed(1)}" y="${by + BAR - 2}" font-size="9">${compact(bar.value)}</text>`);
    });
  });
  out.push("</svg>");
  return out.join("\n") + "\n";
}
