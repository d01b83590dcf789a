/**
 * The map's palette: viridis, as 9 control points of matplotlib's table
 * interpolated linearly into 256 colours. A value v in [min, max] gets entry
 * round((v - min) / (max - min) * 255); NaN is transparent.
 */

export const VIRIDIS_POINTS: [number, number, number][] = [
  [68, 1, 84],
  [71, 44, 122],
  [59, 81, 139],
  [44, 113, 142],
  [33, 144, 141],
  [39, 173, 129],
  [92, 200, 99],
  [170, 220, 50],
  [253, 231, 37],
];

/** 256 RGB entries, packed as [r, g, b, r, g, b, ...]. */
export const VIRIDIS: Uint8Array = (() => {
  const lut = new Uint8Array(256 * 3);
  const last = VIRIDIS_POINTS.length - 1;
  for (let i = 0; i < 256; i++) {
    const x = (i / 255) * last;
    const k = Math.min(Math.floor(x), last - 1);
    const f = x - k;
    const a = VIRIDIS_POINTS[k]!;
    const b = VIRIDIS_POINTS[k + 1]!;
    for (let c = 0; c < 3; c++) lut[i * 3 + c] = Math.round(a[c]! + (b[c]! - a[c]!) * f);
  }
  return lut;
})();

/** The palette index of `value` for the range [min, max]. */
export function paletteIndex(value: number, min: number, max: number): number {
  if (!(max > min)) return 128;
  const t = (value - min) / (max - min);
  return Math.max(0, Math.min(255, Math.round(t * 255)));
}

/** A CSS colour for `value`. */
export function cssColor(value: number, min: number, max: number): string {
  const i = paletteIndex(value, min, max) * 3;
  return `rgb(${VIRIDIS[i]}, ${VIRIDIS[i + 1]}, ${VIRIDIS[i + 2]})`;
}

/** Draw the colour bar into `canvas` (left = min, right = max). */
export function drawColorBar(canvas: HTMLCanvasElement): void {
  const ctx = canvas.getContext("2d");
  if (!ctx) return;
  const image = ctx.createImageData(canvas.width, canvas.height);
  for (let x = 0; x < canvas.width; x++) {
    const i = Math.round((x / Math.max(1, canvas.width - 1)) * 255) * 3;
    for (let y = 0; y < canvas.height; y++) {
      const p = (y * canvas.width + x) * 4;
      image.data[p] = VIRIDIS[i]!;
      image.data[p + 1] = VIRIDIS[i + 1]!;
      image.data[p + 2] = VIRIDIS[i + 2]!;
      image.data[p + 3] = 255;
    }
  }
  ctx.putImageData(image, 0, 0);
}
