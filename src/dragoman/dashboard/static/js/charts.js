// Time series charts on uPlot (vendored, canvas): one per metric, one line per group.

import uPlot from "../vendor/uPlot.esm.js";
import { compact, usd } from "./dom.js";

const PALETTE = ["#4e79a7", "#f28e2b", "#e15759", "#59a14f", "#b07aa1", "#edc948", "#76b7b2", "#ff9da7", "#9c755f"];
const OTHER = "#9aa0a6";
const HEIGHT = 220;

// A group keeps its colour across the charts and refreshes: the first free one when it first shows.
const assigned = new Map();

export function colours(series) {
  const shown = new Set(series.map((s) => s.key));
  for (const key of assigned.keys()) if (!shown.has(key)) assigned.delete(key);
  const used = new Set(assigned.values());
  return series.map((s) => {
    if (s.other) return OTHER;
    if (!assigned.has(s.key)) {
      const free = PALETTE.find((c) => !used.has(c)) ?? PALETTE[assigned.size % PALETTE.length];
      assigned.set(s.key, free);
      used.add(free);
    }
    return assigned.get(s.key);
  });
}

export function label(s) {
  if (s.other) return "other";
  return s.key === null || s.key === undefined ? "(none)" : s.key;
}

export class TimeChart {
  constructor(container, metric) {
    this.container = container;
    this.metric = metric; // requests | tokens | cost_usd
    this.plot = null;
    this.signature = "";
    new ResizeObserver(() => this.resize()).observe(container);
  }

  format(value) {
    if (value === null || value === undefined) return "–";
    return this.metric === "cost_usd" ? usd(value) : compact(value);
  }

  update(data) {
    const names = data.series.map(label);
    const palette = colours(data.series);
    const signature = JSON.stringify([names, palette]);
    const columns = [data.buckets, ...data.series.map((s) => s[this.metric])];
    if (this.plot && signature === this.signature) {
      this.plot.setData(columns);
      return;
    }
    this.signature = signature;
    if (this.plot) this.plot.destroy();
    const fmt = (u, value) => this.format(value);
    const options = {
      width: this.width(),
      height: HEIGHT,
      series: [
        {},
        ...data.series.map((s, i) => ({
          label: names[i],
          stroke: palette[i],
          fill: palette[i] + "22",
          width: 2,
          value: fmt,
        })),
      ],
      scales: { x: { time: true }, y: { range: (u, min, max) => [0, max > 0 ? max * 1.15 : 1] } },
      axes: [
        { stroke: "#5f6368", grid: { stroke: "#eceff1" }, ticks: { stroke: "#eceff1" } },
        {
          stroke: "#5f6368",
          grid: { stroke: "#eceff1" },
          ticks: { stroke: "#eceff1" },
          size: (u, values) => 16 + 7 * Math.max(3, ...(values || []).map((v) => v.length)),
          values: (u, ticks) => ticks.map((v) => this.format(v)),
        },
      ],
      legend: { live: true },
      cursor: { points: { size: 6 } },
    };
    this.plot = new uPlot(options, columns, this.container);
  }

  width() {
    return Math.max(this.container.clientWidth, 200);
  }

  resize() {
    if (this.plot) this.plot.setSize({ width: this.width(), height: HEIGHT });
  }
}
