/**
 * What a service built with `dasf_geo.service` offers beyond its functions
 * (its API info has a `service` object): parameters with edit fields and the
 * monitoring store as plots, through the reserved DASF requests; and the
 * notifications feed of the gateway.
 */

import { type ApiInfo, type DasfClient, DasfRemoteError } from "../dasf/client";
import { el, message } from "./dom";
import { linePlot } from "./plot";

interface ServiceInfo {
  parameters?: Record<string, { type?: string; monitor?: boolean }>;
  reserved?: string[];
}

function errorText(exc: unknown): string {
  return exc instanceof Error ? exc.message : String(exc);
}

/** The parameters panel, or null when the service has none. */
export function parametersPanel(api: ApiInfo, client: DasfClient): HTMLElement | null {
  const info = api["service"] as ServiceInfo | undefined;
  if (!info?.reserved?.includes("~list_parameters") || !info.parameters || Object.keys(info.parameters).length === 0) return null;
  const body = el("div", { class: "parameters" }, "loading…");
  const panel = el("section", { class: "panel", "data-testid": "parameters" }, el("h3", {}, "Parameters"), body);
  const load = async () => {
    try {
      const values = (await client.call({ func_name: "~list_parameters" }, { timeoutMs: 10000 })) as Record<string, unknown>;
      body.replaceChildren(
        ...Object.entries(values).map(([name, value]) => {
          const input = el("input", { type: "text", value: JSON.stringify(value), "aria-label": name }) as HTMLInputElement;
          const status = el("span", { class: "field-error", hidden: "" });
          const save = el("button", { type: "button" }, "set");
          save.addEventListener("click", async () => {
            status.hidden = true;
            let v: unknown;
            try {
              v = JSON.parse(input.value);
            } catch {
              v = input.value;
            }
            try {
              const now = await client.call({ func_name: "~set_parameter", parameter: name, value: v }, { timeoutMs: 10000 });
              input.value = JSON.stringify(now);
            } catch (exc) {
              status.textContent = exc instanceof DasfRemoteError && exc.errors.length ? exc.errors.map((e) => e.msg).join("; ") : errorText(exc);
              status.hidden = false;
            }
          });
          const type = info.parameters?.[name]?.type;
          return el("div", { class: "field" }, el("label", { class: "field-label" }, `${name}${type ? ` (${type})` : ""}`), input, " ", save, status);
        }),
      );
    } catch (exc) {
      body.replaceChildren(message("error", `cannot read the parameters: ${errorText(exc)}`));
    }
  };
  void load();
  return panel;
}

/** The monitoring panel (a plot per variable), or null when the service has none. */
export function monitorPanel(api: ApiInfo, client: DasfClient): HTMLElement | null {
  const info = api["service"] as ServiceInfo | undefined;
  if (!info?.reserved?.includes("~monitor")) return null;
  const body = el("div", {}, "loading…");
  const refresh = el("button", { type: "button" }, "refresh");
  const panel = el("section", { class: "panel", "data-testid": "monitor" }, el("h3", {}, "Monitoring ", refresh), body);
  const load = async () => {
    try {
      const records = (await client.call({ func_name: "~monitor", variables: null, start: null, end: null }, { timeoutMs: 10000 })) as {
        variable: string;
        value: unknown;
        timestamp: string;
      }[];
      const byVariable = new Map<string, { t: number[]; v: number[]; labels: string[]; raw: unknown[] }>();
      for (const r of records) {
        const s = byVariable.get(r.variable) ?? { t: [], v: [], labels: [], raw: [] };
        s.raw.push(r.value);
        s.t.push(Date.parse(r.timestamp));
        s.v.push(typeof r.value === "number" ? r.value : Number(r.value));
        s.labels.push(r.timestamp);
        byVariable.set(r.variable, s);
      }
      body.replaceChildren(
        ...(byVariable.size
          ? [...byVariable].map(([name, s]) =>
              s.v.some((x) => Number.isFinite(x))
                ? linePlot(s.v, { xs: s.t, xLabels: s.labels, title: name, testid: "monitor-plot" })
                : // values that are not numbers: the latest ones as a list
                  el(
                    "figure",
                    { class: "plot-figure", "data-testid": "monitor-values" },
                    el("figcaption", {}, `${name} (latest)`),
                    el("ul", {}, ...s.raw.slice(-10).reverse().map((v, i) => el("li", {}, `${s.labels[s.labels.length - 1 - i] ?? ""}: ${typeof v === "string" ? v : JSON.stringify(v)}`))),
                  ),
            )
          : [el("p", {}, "nothing recorded yet")]),
      );
    } catch (exc) {
      body.replaceChildren(message("error", `cannot read the monitoring store: ${errorText(exc)}`));
    }
  };
  refresh.addEventListener("click", () => void load());
  void load();
  return panel;
}

type Notification = { service?: string; msg?: string; severity?: string; timestamp?: string };

async function fetchNotifications(): Promise<Notification[] | null> {
  let response: Response;
  try {
    response = await fetch("notifications?limit=50", { headers: { Accept: "application/json" } });
  } catch {
    return null;
  }
  if (!response.ok) return null;
  try {
    return ((await response.json()) as { notifications?: Notification[] }).notifications ?? [];
  } catch {
    return null;
  }
}

function notificationList(items: Notification[]): HTMLElement {
  return items.length
    ? el(
        "ul",
        { class: "notifications" },
        ...items.map((n) =>
          el("li", { class: `severity-${(n.severity ?? "INFO").toLowerCase()}` }, `${n.timestamp ?? ""} ${n.severity ?? ""} ${n.service ?? ""}: ${n.msg ?? ""}`),
        ),
      )
    : el("p", {}, "no notifications");
}

/**
 * The gateway's notifications feed, refreshed every `everyMs` (nothing when
 * the page has no gateway or the route is absent).
 */
export async function notificationsPanel(everyMs = 10000): Promise<HTMLElement | null> {
  const items = await fetchNotifications();
  if (items === null) return null;
  const body = el("div", {}, notificationList(items));
  const panel = el("section", { class: "panel", "data-testid": "notifications" }, el("h3", {}, "Notifications"), body);
  const timer = setInterval(() => {
    if (!panel.isConnected) {
      clearInterval(timer);
      return;
    }
    void fetchNotifications().then((fresh) => {
      if (fresh !== null) body.replaceChildren(notificationList(fresh));
    });
  }, everyMs);
  return panel;
}
