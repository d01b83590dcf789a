/** A small line plot on a canvas (ndarray results, time series, monitoring). */

import { el } from "./dom";

/** Draw `ys` (against `xs`, default 0..n-1) with axis labels; NaN values leave gaps. */
export function linePlot(ys: number[], options: { xs?: number[]; xLabels?: string[]; title?: string; testid?: string } = {}): HTMLElement {
  const width = 640;
  const height = 240;
  const canvas = el("canvas", { width: String(width), height: String(height), class: "plot", "data-testid": options.testid ?? "line-plot" }) as HTMLCanvasElement;
  const ctx = canvas.getContext("2d");
  const xs = options.xs ?? ys.map((_, i) => i);
  const finite = ys.filter((y) => Number.isFinite(y));
  if (ctx && finite.length) {
    const left = 60;
    const bottom = height - 30;
    const top = 10;
    const right = width - 10;
    let lo = Math.min(...finite);
    let hi = Math.max(...finite);
    if (lo === hi) {
      lo -= 1;
      hi += 1;
    }
    const x0 = Math.min(...xs);
    const x1 = Math.max(...xs) === x0 ? x0 + 1 : Math.max(...xs);
    const px = (x: number) => left + ((x - x0) / (x1 - x0)) * (right - left);
    const py = (y: number) => bottom - ((y - lo) / (hi - lo)) * (bottom - top);
    ctx.fillStyle = "#fff";
    ctx.fillRect(0, 0, width, height);
    ctx.strokeStyle = "#999";
    ctx.beginPath();
    ctx.moveTo(left, top);
    ctx.lineTo(left, bottom);
    ctx.lineTo(right, bottom);
    ctx.stroke();
    ctx.fillStyle = "#333";
    ctx.font = "11px sans-serif";
    ctx.fillText(hi.toPrecision(4), 4, top + 8);
    ctx.fillText(lo.toPrecision(4), 4, bottom);
    const labels = options.xLabels;
    ctx.fillText(labels?.[0] ?? String(x0), left, height - 10);
    const lastLabel = labels?.[labels.length - 1] ?? String(x1);
    ctx.fillText(lastLabel, right - ctx.measureText(lastLabel).width, height - 10);
    ctx.strokeStyle = "#1f77b4";
    ctx.lineWidth = 2;
    ctx.beginPath();
    let pen = false;
    ys.forEach((y, i) => {
      if (!Number.isFinite(y)) {
        pen = false;
        return;
      }
      if (pen) ctx.lineTo(px(xs[i]!), py(y));
      else ctx.moveTo(px(xs[i]!), py(y));
      pen = true;
    });
    ctx.stroke();
    if (finite.length === 1) {
      const i = ys.findIndex((y) => Number.isFinite(y));
      ctx.fillStyle = "#1f77b4";
      ctx.beginPath();
      ctx.arc(px(xs[i]!), py(ys[i]!), 4, 0, 2 * Math.PI);
      ctx.fill();
    }
  }
  return el("figure", { class: "plot-figure" }, options.title ? el("figcaption", {}, options.title) : null, canvas);
}
