/** A tiny helper to build DOM elements (no framework). */

export type Child = Node | string | null | undefined | false;

/** `<tag attrs...>children</tag>`; attribute values are strings ("" for a bare attribute). */
export function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Record<string, string> = {},
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, value);
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child);
  }
  return node;
}

/** Offer `data` as a file download named `name`. */
export function download(name: string, data: BlobPart, type: string): void {
  const url = URL.createObjectURL(new Blob([data], { type }));
  const a = el("a", { href: url, download: name });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

/** A message box: `kind` is "error", "info" or "warning". */
export function message(kind: "error" | "info" | "warning", text: string, testid = `${kind}-message`): HTMLElement {
  return el("div", { class: `message ${kind}`, role: kind === "error" ? "alert" : "status", "data-testid": testid }, text);
}
