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

const INLINE = /``([^`]+)``|(?::[\w:.-]+:)?`([^`]+)`|\*\*([^*]+)\*\*|\*([^*\s][^*]*)\*/g;

/**
 * One line or paragraph of a docstring (reStructuredText) as DOM nodes:
 * ``literal``, `x` and :role:`x` become `<code>`, **strong** and *emphasis*
 * their elements; everything else stays text (nothing is parsed as HTML).
 */
export function docInline(text: string): Node[] {
  const nodes: Node[] = [];
  let last = 0;
  for (const match of text.matchAll(INLINE)) {
    const at = match.index ?? 0;
    if (at > last) nodes.push(document.createTextNode(text.slice(last, at)));
    const [, literal, role, strong, emphasis] = match;
    if (literal !== undefined || role !== undefined) {
      // :func:`~pkg.name` shows the last part, as Sphinx does
      const code = literal ?? role!.replace(/^~(?:.*\.)?/, "");
      nodes.push(el("code", {}, code));
    } else if (strong !== undefined) nodes.push(el("strong", {}, strong));
    else nodes.push(el("em", {}, emphasis!));
    last = at + match[0].length;
  }
  if (last < text.length) nodes.push(document.createTextNode(text.slice(last)));
  return nodes;
}

/**
 * A docstring as a `<div class="doc">`: one `<p>` per paragraph with inline
 * markup as in {@link docInline}; an indented paragraph (a reST literal block,
 * announced by `::`) becomes a `<pre>`.
 */
export function docBlock(text: string): HTMLElement {
  const blocks: HTMLElement[] = [];
  for (const raw of text.split(/\n[ \t]*\n/)) {
    const lines = raw.split("\n").filter((line) => line.trim().length > 0);
    if (lines.length === 0) continue;
    if (lines.every((line) => /^\s/.test(line))) {
      const indent = Math.min(...lines.map((line) => line.length - line.trimStart().length));
      blocks.push(el("pre", {}, lines.map((line) => line.slice(indent)).join("\n")));
      continue;
    }
    // "text::" announces a literal block and reads as "text:"; a lone " ::" disappears
    const joined = lines.map((line) => line.trim()).join(" ").replace(/\s*::$/, (m) => (m.trim() === m ? ":" : ""));
    blocks.push(el("p", {}, ...docInline(joined)));
  }
  return el("div", { class: "doc" }, ...blocks);
}
