/**
 * Finding services: `GET /services` of the gateway serving the page, or, on
 * a page served without a gateway, the topics in the `topic` query
 * parameter asked for their API info over DASF (`broker` query parameter).
 */

import { type ApiInfo, DasfClient, type DasfClientOptions } from "../dasf/client";

export interface ServiceEntry {
  topic: string;
  description: string;
  client: DasfClient;
  /** the API info, fetched when the service is opened */
  api?: ApiInfo;
  /** where the API info comes from */
  via: "gateway" | "dasf";
}

export interface Connection {
  /** the broker base URL the DASF client uses */
  broker: string;
  gateway: boolean;
  services: ServiceEntry[];
}

/** The gateway's WebSocket pass-through next to the page (also when the gateway lives under a path prefix). */
function sameOriginBroker(): string {
  const base = new URL(".", location.href);
  base.protocol = location.protocol === "https:" ? "wss:" : "ws:";
  base.search = "";
  base.hash = "";
  return base.href.replace(/\/+$/, "");
}

async function getJson(path: string): Promise<unknown> {
  const response = await fetch(path, { headers: { Accept: "application/json" } });
  if (!response.ok) throw new Error(`GET ${path}: HTTP ${response.status}`);
  return (await response.json()) as unknown;
}

/** Discover the services; throws with a message for the page when there is nothing to show. */
export async function discover(clientOptions: Partial<DasfClientOptions> = {}): Promise<Connection> {
  const params = new URLSearchParams(location.search);
  const brokerParam = params.get("broker");
  const make = (broker: string, topic: string) => new DasfClient({ ...clientOptions, broker, topic });
  if (!brokerParam) {
    let listing: unknown;
    try {
      listing = await getJson("services");
    } catch (exc) {
      throw new Error(
        `cannot list the services (${exc instanceof Error ? exc.message : String(exc)}); ` +
          "open the page from `dasf-geo serve` or `dasf-geo gateway`, or add ?broker=ws://HOST:PORT&topic=TOPIC to its URL",
      );
    }
    const broker = sameOriginBroker();
    const services = ((listing as { services?: { topic: string; description?: string }[] }).services ?? []).map(
      (s): ServiceEntry => ({ topic: s.topic, description: s.description ?? "", client: make(broker, s.topic), via: "gateway" }),
    );
    return { broker, gateway: true, services };
  }
  if (!/^wss?:\/\//.test(brokerParam)) throw new Error(`the broker parameter must be a ws:// or wss:// URL, got ${JSON.stringify(brokerParam)}`);
  const topics = params.getAll("topic").flatMap((t) => t.split(",")).map((t) => t.trim()).filter(Boolean);
  if (topics.length === 0) throw new Error("add the service's topic to the URL: ?broker=…&topic=TOPIC");
  return { broker: brokerParam, gateway: false, services: topics.map((topic) => ({ topic, description: "", client: make(brokerParam, topic), via: "dasf" })) };
}

/** The API info of `entry` (from the gateway, or over DASF), cached. */
export async function apiInfo(entry: ServiceEntry): Promise<ApiInfo> {
  if (entry.api) return entry.api;
  if (entry.via === "gateway") {
    entry.api = (await getJson(`services/${encodeURIComponent(entry.topic)}`)) as ApiInfo;
  } else {
    entry.api = await entry.client.apiInfo({ timeoutMs: 10000 });
  }
  return entry.api;
}
