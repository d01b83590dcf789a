/**
 * The dasf_geo dashboard: services and their functions, a form per
 * function, progress, results with a map preview, and the service extras.
 */

import {
  type ApiInfo,
  type BinaryPart,
  DasfConnectionError,
  DasfRemoteError,
  type FunctionInfo,
  type JsonSchema,
  NETCDF_ACCEPT,
  partPlaceholder,
} from "../dasf/client";
import { encodeBase64 } from "../dasf/base64";
import { docBlock, docInline, el, message } from "./dom";
import { monitorPanel, notificationsPanel, parametersPanel } from "./extras";
import { type FileValue, buildForm } from "./form";
import { landFeatureCount } from "./map";
import { progressView } from "./progress";
import { lastMap, resultView } from "./results";
import { type Connection, type ServiceEntry, apiInfo, discover } from "./services";

const PING_TIMEOUT_MS = 5000;
/** A running call with no news for this long gets a ping to check that the service is still there. */
const QUIET_MS = 15000;

function text(exc: unknown): string {
  return exc instanceof Error ? exc.message : String(exc);
}

function xTypeOf(schema: JsonSchema | undefined): string {
  const t = schema?.["x-dasf-type"];
  return typeof t === "string" ? t : "";
}

function isFileValue(v: unknown): v is FileValue {
  return typeof v === "object" && v !== null && (v as FileValue).kind === "netcdf" && (v as FileValue).data instanceof Uint8Array;
}

/** Replace Dataset files by binary-part placeholders (or base64 text for JSON-only backends). */
function withParts(args: Record<string, unknown>, useParts: boolean, parts: BinaryPart[]): { args: Record<string, unknown>; parts: BinaryPart[] } {
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(args)) {
    if (isFileValue(value)) {
      if (useParts) {
        parts.push({ data: value.data, type: `application/x-netcdf; xarray=${value.xarrayType}` });
        out[key] = partPlaceholder(parts.length);
      } else out[key] = encodeBase64(value.data);
    } else out[key] = value;
  }
  return { args: out, parts };
}

interface Member {
  /** shown name: `f` or `Class.method` */
  label: string;
  info: FunctionInfo;
  /** for a method: the class's name and constructor schema */
  cls?: { name: string; schema: JsonSchema };
}

function members(api: ApiInfo): Member[] {
  const out: Member[] = (api.functions ?? []).map((f) => ({ label: f.name, info: f }));
  for (const c of api.classes ?? []) {
    for (const m of c.methods ?? []) out.push({ label: `${c.name}.${m.name}`, info: m, cls: { name: c.name, schema: c.rpc_schema } });
  }
  return out;
}

function memberView(entry: ServiceEntry, member: Member, root: JsonSchema): HTMLElement {
  const description = typeof member.info.rpc_schema["description"] === "string" ? (member.info.rpc_schema["description"] as string) : "";
  const ctorForm = member.cls ? buildForm(member.cls.schema, member.cls.schema) : undefined;
  const form = buildForm(member.info.rpc_schema, member.info.rpc_schema);
  const callButton = el("button", { type: "submit", class: "call", "data-testid": "call" }, "call");
  form.element.append(callButton);
  const status = el("div", { class: "call-status" });
  const result = el("div", { class: "result", "data-testid": "result" });
  const returnType = xTypeOf(member.info.return_schema);
  const run = async () => {
    status.replaceChildren();
    result.replaceChildren();
    const args = await form.values();
    const ctorArgs = ctorForm ? await ctorForm.values() : {};
    if (!args || !ctorArgs) {
      status.replaceChildren(message("error", "fix the fields marked above", "form-error"));
      return;
    }
    callButton.disabled = true;
    const progress = progressView();
    status.append(progress.element);
    const started = performance.now();
    try {
      // a service that went away answers no ping: say so instead of waiting forever
      try {
        await entry.client.ping({ timeoutMs: PING_TIMEOUT_MS });
      } catch (exc) {
        throw new DasfConnectionError(
          exc instanceof DasfConnectionError && /no reply/.test(exc.message)
            ? `the service on topic '${entry.topic}' does not answer (is it still running?)`
            : text(exc),
        );
      }
      const hasFiles = Object.values({ ...args, ...ctorArgs }).some(isFileValue);
      const useParts = hasFiles && (await entry.client.supports("parts"));
      const parts: BinaryPart[] = [];
      const ctor = withParts(ctorArgs, useParts, parts);
      const fn = withParts(args, useParts, parts);
      const request = member.cls
        ? { class_name: member.cls.name, ...ctor.args, function: { func_name: member.info.name, ...fn.args } }
        : { func_name: member.info.name, ...fn.args };
      // a service that stops while the call runs: notice it with pings
      const watchdog = new AbortController();
      let news = performance.now();
      const timer = setInterval(() => {
        if (performance.now() - news < QUIET_MS) return;
        news = performance.now();
        entry.client.ping({ timeoutMs: 2 * PING_TIMEOUT_MS }).catch(() =>
          watchdog.abort(new DasfConnectionError(`the service on topic '${entry.topic}' stopped answering during the call`)),
        );
      }, 1000);
      let value: unknown;
      try {
        value = await entry.client.call(
          request,
          {
            accept: returnType.startsWith("xarray.") ? NETCDF_ACCEPT : undefined,
            onProgress: (r) => {
              news = performance.now();
              progress.update(r);
            },
            onTransfer: (received, total) => {
              news = performance.now();
              progress.transfer(received, total);
            },
            signal: watchdog.signal,
          },
          parts,
        );
      } finally {
        clearInterval(timer);
      }
      progress.done();
      const arrived = performance.now();
      timings.started = started;
      timings.arrived = arrived;
      const view = resultView(value, returnType, member.info.name, (s) => status.append(el("div", { class: "map-status" }, s)));
      result.append(view);
      status.append(el("div", { class: "timing", "data-testid": "timing" }, `reply after ${((arrived - started) / 1000).toFixed(2)} s`));
      document.body.dataset["lastCall"] = `${member.label}:${String(arrived)}`;
    } catch (exc) {
      progress.element.remove();
      if (exc instanceof DasfRemoteError) {
        const left = exc.errors.length ? [...form.showErrors(exc.errors), ...(ctorForm ? ctorForm.showErrors(exc.errors) : [])] : [];
        const shown = exc.errors.length > 0 && left.length < exc.errors.length;
        status.append(message("error", shown ? `the service rejected the arguments${left.length ? `: ${left.join("; ")}` : " (see the fields above)"}` : `the service answered with an error: ${exc.message}`, "call-error"));
      } else {
        status.append(message("error", text(exc), "call-error"));
      }
    } finally {
      callButton.disabled = false;
    }
  };
  form.element.addEventListener("submit", (ev) => {
    ev.preventDefault();
    void run();
  });
  void root;
  return el(
    "section",
    { class: "member", "data-member": member.label },
    el("h3", {}, member.label),
    description ? docBlock(description) : null,
    ctorForm ? el("div", { class: "ctor" }, el("h4", {}, `${member.cls!.name}(…)`), ctorForm.element) : null,
    form.element,
    status,
    result,
  );
}

async function showService(entry: ServiceEntry, main: HTMLElement, nav: HTMLElement): Promise<void> {
  nav.querySelectorAll("[aria-current]").forEach((n) => n.removeAttribute("aria-current"));
  nav.querySelector(`[data-topic="${CSS.escape(entry.topic)}"]`)?.setAttribute("aria-current", "true");
  main.replaceChildren(el("h2", {}, entry.topic), el("p", {}, "asking the service for its functions…"));
  let api: ApiInfo;
  try {
    api = await apiInfo(entry);
  } catch (exc) {
    main.replaceChildren(el("h2", {}, entry.topic), message("error", `cannot read the service's API: ${text(exc)}`, "service-error"));
    return;
  }
  const list = members(api);
  const functionsNav = el("ul", { class: "functions" });
  const detail = el("div", { class: "member-detail" });
  const open = (m: Member) => {
    functionsNav.querySelectorAll("[aria-current]").forEach((n) => n.removeAttribute("aria-current"));
    functionsNav.querySelector(`[data-member="${CSS.escape(m.label)}"]`)?.setAttribute("aria-current", "true");
    detail.replaceChildren(memberView(entry, m, api.rpc_schema ?? {}));
    history.replaceState(null, "", `#${encodeURIComponent(entry.topic)}/${encodeURIComponent(m.label)}`);
  };
  for (const m of list) {
    const doc = typeof m.info.rpc_schema["description"] === "string" ? (m.info.rpc_schema["description"] as string).split("\n")[0] : "";
    const button = el("button", { type: "button", "data-member": m.label }, m.label);
    button.addEventListener("click", () => open(m));
    functionsNav.append(el("li", {}, button, doc ? el("span", { class: "doc" }, " ", ...docInline(doc)) : null));
  }
  // the whole module docstring here; the list of services shows its first paragraph
  const description = (typeof api.rpc_schema?.["description"] === "string" ? (api.rpc_schema["description"] as string) : "") || entry.description;
  const extras = [parametersPanel(api, entry.client), monitorPanel(api, entry.client)].filter((x): x is HTMLElement => x !== null);
  main.replaceChildren(
    el("h2", {}, entry.topic),
    description ? docBlock(description) : "",
    list.length ? functionsNav : el("p", {}, "this service offers no functions"),
    detail,
    ...extras,
  );
  const wanted = decodeURIComponent(location.hash.slice(1)).split("/");
  const first = (wanted[0] === entry.topic && list.find((m) => m.label === wanted[1])) || list[0];
  if (first) open(first);
}

async function start(): Promise<void> {
  const nav = el("nav", { class: "services", "data-testid": "services" });
  const main = el("main", { class: "service" });
  const aside = el("aside", { class: "side" });
  document.body.replaceChildren(el("header", {}, el("h1", {}, "dasf_geo dashboard")), el("div", { class: "layout" }, nav, main, aside));
  let connection: Connection;
  try {
    connection = await discover();
  } catch (exc) {
    main.replaceChildren(message("error", text(exc), "discovery-error"));
    return;
  }
  if (connection.services.length === 0) {
    main.replaceChildren(message("info", "no services are registered yet; start one with dasf-geo serve MODULE"));
  }
  for (const entry of connection.services) {
    const button = el("button", { type: "button", "data-topic": entry.topic }, entry.topic);
    button.addEventListener("click", () => void showService(entry, main, nav));
    nav.append(el("div", { class: "service-item" }, button, entry.description ? docBlock(entry.description) : null));
  }
  const wantedTopic = decodeURIComponent(location.hash.slice(1)).split("/")[0];
  const first = connection.services.find((s) => s.topic === wantedTopic) ?? connection.services[0];
  if (first) await showService(first, main, nav);
  if (connection.gateway) {
    const feed = await notificationsPanel();
    if (feed) aside.append(feed);
  }
}

/** When the last call was clicked and its reply arrived (performance.now()). */
const timings = { started: 0, arrived: 0 };

/** What tests and benchmarks read from the page. */
(globalThis as Record<string, unknown>)["dasfGeoDashboard"] = {
  timings,
  get map() {
    return lastMap;
  },
  landFeatureCount,
};

window.addEventListener("unhandledrejection", (ev) => {
  document.body.append(message("error", `unexpected error: ${text(ev.reason)}`, "unexpected-error"));
});

void start();
