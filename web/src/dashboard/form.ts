/**
 * A form generated from a function's JSON schema (its `rpc_schema`): one
 * field per argument, client-side validation from the schema, and the
 * server's structured errors shown next to the field they name.
 */

import type { JsonSchema } from "../dasf/client";
import { docInline, el } from "./dom";

/** A Dataset/DataArray argument chosen as a file: sent as a binary part or base64 text. */
export interface FileValue {
  kind: "netcdf";
  name: string;
  data: Uint8Array;
  xarrayType: "Dataset" | "DataArray";
}

/** What reading a field gives: a value, nothing (use the default), or an error. */
type Read = { ok: true; value: unknown; omit?: boolean } | { ok: false; error: string };

interface Field {
  element: HTMLElement;
  read(): Promise<Read>;
  /** show `text` next to the field ("" clears it); `path` is the rest of the error's loc */
  showError(text: string, path: (string | number)[]): boolean;
}

export interface SchemaForm {
  element: HTMLFormElement;
  /** the request's arguments, or undefined after showing the errors next to the fields */
  values(): Promise<Record<string, unknown> | undefined>;
  /** show server validation errors; returns those no field took */
  showErrors(errors: { loc: (string | number)[]; msg: string }[]): string[];
  clearErrors(): void;
}

function resolve(schema: JsonSchema, root: JsonSchema): JsonSchema {
  let s = schema;
  for (let i = 0; i < 20 && typeof s["$ref"] === "string"; i++) {
    const ref = s["$ref"] as string;
    const m = /^#\/(\$defs|definitions)\/(.+)$/.exec(ref);
    const defs = m ? (root[m[1]!] as Record<string, JsonSchema> | undefined) : undefined;
    const target = m && defs ? defs[decodeURIComponent(m[2]!)] : undefined;
    if (!target) break;
    const { $ref: _ignored, ...rest } = s;
    s = { ...target, ...rest };
  }
  return s;
}

function typesOf(schema: JsonSchema): string[] {
  const t = schema["type"];
  if (Array.isArray(t)) return t as string[];
  return typeof t === "string" ? [t] : [];
}

function describe(schema: JsonSchema): string {
  return typeof schema["description"] === "string" ? (schema["description"] as string) : "";
}

function xType(schema: JsonSchema): string {
  return typeof schema["x-dasf-type"] === "string" ? (schema["x-dasf-type"] as string) : "";
}

function errorBox(): HTMLElement {
  return el("div", { class: "field-error", role: "alert", "data-testid": "field-error", hidden: "" });
}

function setError(box: HTMLElement, text: string): void {
  box.textContent = text;
  box.hidden = !text;
}

function checkNumber(schema: JsonSchema, x: number): string | undefined {
  const min = schema["minimum"];
  const max = schema["maximum"];
  const xmin = schema["exclusiveMinimum"];
  const xmax = schema["exclusiveMaximum"];
  if (typeof min === "number" && x < min) return `must be at least ${min}`;
  if (typeof max === "number" && x > max) return `must be at most ${max}`;
  if (typeof xmin === "number" && x <= xmin) return `must be greater than ${xmin}`;
  if (typeof xmax === "number" && x >= xmax) return `must be less than ${xmax}`;
  return undefined;
}

function checkString(schema: JsonSchema, s: string): string | undefined {
  const minL = schema["minLength"];
  const maxL = schema["maxLength"];
  const pattern = schema["pattern"];
  if (typeof minL === "number" && s.length < minL) return `must have at least ${minL} characters`;
  if (typeof maxL === "number" && s.length > maxL) return `must have at most ${maxL} characters`;
  if (typeof pattern === "string") {
    try {
      if (!new RegExp(pattern, "u").test(s)) return `must match the pattern ${pattern}`;
    } catch {
      // a pattern JavaScript cannot compile is left to the server
    }
  }
  return undefined;
}

/** Parse CSV text into records (numbers where a cell is a number; empty cells are null). */
export function parseCsv(text: string): Record<string, string | number | null>[] {
  const rows: string[][] = [];
  let row: string[] = [];
  let cell = "";
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i]!;
    if (quoted) {
      if (ch === '"' && text[i + 1] === '"') {
        cell += '"';
        i++;
      } else if (ch === '"') quoted = false;
      else cell += ch;
    } else if (ch === '"') quoted = true;
    else if (ch === ",") {
      row.push(cell);
      cell = "";
    } else if (ch === "\n" || ch === "\r") {
      if (ch === "\r" && text[i + 1] === "\n") i++;
      row.push(cell);
      rows.push(row);
      row = [];
      cell = "";
    } else cell += ch;
  }
  if (quoted) throw new Error("the CSV ends inside a quoted cell");
  if (cell !== "" || row.length) {
    row.push(cell);
    rows.push(row);
  }
  const nonEmpty = rows.filter((r) => r.some((c) => c !== ""));
  if (nonEmpty.length === 0) throw new Error("the CSV file is empty");
  const header = nonEmpty[0]!;
  return nonEmpty.slice(1).map((r, n) => {
    if (r.length !== header.length) throw new Error(`CSV line ${n + 2} has ${r.length} cells, the header has ${header.length}`);
    const record: Record<string, string | number | null> = {};
    header.forEach((name, i) => {
      const c = r[i]!;
      record[name] = c === "" ? null : /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/.test(c.trim()) ? Number(c) : c;
    });
    return record;
  });
}

async function fileBytes(input: HTMLInputElement): Promise<{ name: string; data: Uint8Array } | undefined> {
  const file = input.files?.[0];
  if (!file) return undefined;
  return { name: file.name, data: new Uint8Array(await file.arrayBuffer()) };
}

function isNetcdf(data: Uint8Array): boolean {
  const head = String.fromCharCode(...data.subarray(0, 4));
  return head.startsWith("CDF") || head === "\x89HDF";
}

function fieldFor(schema0: JsonSchema, root: JsonSchema, name: string, required: boolean): Field {
  const schema = resolve(schema0, root);
  const box = errorBox();
  const title = typeof schema["title"] === "string" ? (schema["title"] as string) : name;
  const help = describe(schema);
  const wrap = (control: HTMLElement, ...extra: HTMLElement[]) =>
    el(
      "div",
      { class: "field", "data-field": name },
      el("label", { class: "field-label" }, `${name}${required ? " *" : ""}`, help ? el("span", { class: "help" }, " — ", ...docInline(help)) : null),
      control,
      ...extra,
      box,
    );
  const plainError = (text: string, path: (string | number)[]) => {
    setError(box, path.length ? `${path.join(".")}: ${text}` : text);
    return true;
  };
  const kind = xType(schema);
  const hasDefault = "default" in schema;
  const defaultValue = schema["default"];

  if (kind === "xarray.Dataset" || kind === "xarray.DataArray") {
    const input = el("input", { type: "file", accept: ".nc,.nc3,.nc4,.cdf,application/x-netcdf", name }) as HTMLInputElement;
    return {
      element: wrap(input, el("span", { class: "help" }, ` ${kind.split(".")[1]} as a NetCDF file`)),
      async read() {
        const file = await fileBytes(input);
        if (!file) return required ? { ok: false, error: "choose a NetCDF file" } : { ok: true, value: undefined, omit: true };
        if (!isNetcdf(file.data)) {
          const start = String.fromCharCode(...file.data.subarray(0, 8)).replace(/[^\x20-\x7e]/g, ".");
          return { ok: false, error: `${file.name} is not a NetCDF file (it starts with ${JSON.stringify(start)})` };
        }
        const value: FileValue = { kind: "netcdf", name: file.name, data: file.data, xarrayType: kind === "xarray.Dataset" ? "Dataset" : "DataArray" };
        return { ok: true, value };
      },
      showError: plainError,
    };
  }
  if (kind === "pandas.DataFrame") {
    const input = el("input", { type: "file", accept: ".csv,text/csv", name }) as HTMLInputElement;
    return {
      element: wrap(input, el("span", { class: "help" }, " a table as a CSV file with a header line")),
      async read() {
        const file = await fileBytes(input);
        if (!file) return required ? { ok: false, error: "choose a CSV file" } : { ok: true, value: undefined, omit: true };
        try {
          return { ok: true, value: parseCsv(new TextDecoder().decode(file.data)) };
        } catch (exc) {
          return { ok: false, error: `${file.name}: ${exc instanceof Error ? exc.message : String(exc)}` };
        }
      },
      showError: plainError,
    };
  }
  const types = typesOf(schema);
  const options = Array.isArray(schema["enum"]) ? (schema["enum"] as unknown[]) : undefined;
  if (options) {
    const select = el("select", { name }) as HTMLSelectElement;
    if (!required) select.append(el("option", { value: "" }, hasDefault ? `(default: ${JSON.stringify(defaultValue)})` : "(none)"));
    options.forEach((o, i) => select.append(el("option", { value: String(i) }, typeof o === "string" ? o : JSON.stringify(o))));
    return {
      element: wrap(select),
      async read() {
        if (select.value === "") return { ok: true, value: undefined, omit: true };
        return { ok: true, value: options[Number(select.value)] };
      },
      showError: plainError,
    };
  }
  if (types.includes("boolean") && types.length === 1) {
    const input = el("input", { type: "checkbox", name }) as HTMLInputElement;
    input.checked = defaultValue === true;
    return {
      element: wrap(input),
      async read() {
        return { ok: true, value: input.checked };
      },
      showError: plainError,
    };
  }
  if ((types.includes("number") || types.includes("integer")) && types.every((t) => ["number", "integer", "null"].includes(t))) {
    const integer = types.includes("integer") && !types.includes("number");
    const input = el("input", { type: "text", inputmode: "decimal", name, placeholder: hasDefault ? `default: ${String(defaultValue)}` : integer ? "an integer" : "a number" }) as HTMLInputElement;
    return {
      element: wrap(input),
      async read() {
        const text = input.value.trim();
        if (text === "") return required ? { ok: false, error: "a value is required" } : { ok: true, value: undefined, omit: true };
        const x = Number(text);
        if (!Number.isFinite(x)) return { ok: false, error: `${JSON.stringify(text)} is not a number` };
        if (integer && !Number.isInteger(x)) return { ok: false, error: `${JSON.stringify(text)} is not an integer` };
        const bad = checkNumber(schema, x);
        return bad ? { ok: false, error: bad } : { ok: true, value: x };
      },
      showError: plainError,
    };
  }
  if (types.includes("string") && types.every((t) => ["string", "null"].includes(t)) && !("const" in schema)) {
    const input = el("input", { type: "text", name, placeholder: hasDefault ? `default: ${String(defaultValue)}` : "" }) as HTMLInputElement;
    return {
      element: wrap(input),
      async read() {
        const text = input.value;
        if (text === "") return required ? { ok: false, error: "a value is required" } : { ok: true, value: undefined, omit: true };
        const bad = checkString(schema, text);
        return bad ? { ok: false, error: bad } : { ok: true, value: text };
      },
      showError: plainError,
    };
  }
  if (types.includes("object") && schema["properties"] && typeof schema["properties"] === "object" && kind === "") {
    // a nested model: a fieldset of its own fields
    const props = schema["properties"] as Record<string, JsonSchema>;
    const req = new Set((schema["required"] as string[] | undefined) ?? []);
    const children = Object.entries(props).map(([key, sub]) => [key, fieldFor(sub, root, key, req.has(key))] as const);
    const fieldset = el("fieldset", { class: "nested", "data-field": name }, el("legend", {}, `${name}${required ? " *" : ""}`), ...children.map(([, f]) => f.element), box);
    return {
      element: fieldset,
      async read() {
        const value: Record<string, unknown> = {};
        let ok = true;
        for (const [key, f] of children) {
          const r = await f.read();
          if (!r.ok) {
            f.showError(r.error, []);
            ok = false;
          } else if (!r.omit) value[key] = r.value;
        }
        return ok ? { ok: true, value } : { ok: false, error: "" };
      },
      showError(text, path) {
        const [head, ...rest] = path;
        const child = children.find(([key]) => key === head);
        if (child) return child[1].showError(text, rest);
        return plainError(text, path);
      },
    };
  }
  // lists, unions, ndarrays and anything else: JSON text, checked for JSON
  const isArray = kind === "numpy.ndarray" || types.includes("array");
  const hint = kind === "numpy.ndarray" ? "numbers as a JSON list, e.g. [1, 2.5, 3] (or comma-separated)" : isArray ? "a JSON list, e.g. [1, 2]" : "a JSON value";
  const area = el("textarea", { name, rows: "2", placeholder: hasDefault ? `default: ${JSON.stringify(defaultValue)}` : hint }) as HTMLTextAreaElement;
  return {
    element: wrap(area, el("div", { class: "help" }, hint)),
    async read() {
      const text = area.value.trim();
      if (text === "") return required ? { ok: false, error: "a value is required" } : { ok: true, value: undefined, omit: true };
      let value: unknown;
      try {
        value = JSON.parse(kind === "numpy.ndarray" && !text.startsWith("[") ? `[${text}]` : text);
      } catch {
        return { ok: false, error: `not valid JSON: ${text.length > 40 ? `${text.slice(0, 40)}…` : text}` };
      }
      if (isArray && !Array.isArray(value)) return { ok: false, error: "must be a list" };
      return { ok: true, value };
    },
    showError: plainError,
  };
}

/** A progress reporter parameter: the backend fills it in, callers do not. */
function isProgressReport(schema: JsonSchema): boolean {
  const props = schema["properties"] as Record<string, unknown> | undefined;
  return !!props && "report_type" in props && "report_id" in props && "children" in props;
}

/**
 * Build the form for `schema` (a request model: `func_name` and the arguments).
 * `fixed` names properties that are not arguments (func_name, class_name, function).
 */
export function buildForm(schema: JsonSchema, root: JsonSchema = schema, fixed: string[] = ["func_name", "class_name", "function"]): SchemaForm {
  const props = (resolve(schema, root)["properties"] ?? {}) as Record<string, JsonSchema>;
  const required = new Set((resolve(schema, root)["required"] as string[] | undefined) ?? []);
  const fields = Object.entries(props)
    .filter(([key, sub]) => !fixed.includes(key) && !isProgressReport(resolve(sub, root)))
    .map(([key, sub]) => [key, fieldFor(sub, root, key, required.has(key))] as const);
  const form = el("form", { class: "call-form", novalidate: "" }, ...fields.map(([, f]) => f.element));
  if (fields.length === 0) form.append(el("p", { class: "help" }, "no arguments"));
  const clear = () => form.querySelectorAll<HTMLElement>(".field-error").forEach((b) => setError(b, ""));
  return {
    element: form,
    async values() {
      clear();
      const out: Record<string, unknown> = {};
      let ok = true;
      for (const [key, f] of fields) {
        const r = await f.read();
        if (!r.ok) {
          if (r.error) f.showError(r.error, []);
          ok = false;
        } else if (!r.omit) out[key] = r.value;
      }
      return ok ? out : undefined;
    },
    showErrors(errors) {
      const left: string[] = [];
      for (const e of errors) {
        // drop the request model's own prefixes (a function name, "body")
        const loc = e.loc.filter((part) => !fixed.includes(String(part)));
        let taken = false;
        for (let i = 0; i < loc.length && !taken; i++) {
          const f = fields.find(([key]) => key === String(loc[i]));
          if (f) taken = f[1].showError(e.msg, loc.slice(i + 1));
        }
        if (!taken) left.push(`${e.loc.join(".") || "request"}: ${e.msg}`);
      }
      return left;
    },
    clearErrors: clear,
  };
}
