// The TypeScript client's uploads against a fake broker that records every
// frame: fragments carry their transfer id as the message key (so a Shared
// subscription keeps them with one backend), and an upload given up half-way
// ends with the abort marker. Prints one JSON line for the Python test.
import { DasfClient, type WebSocketLike } from "./dasf_client";

type Frame = { payload: string; properties: Record<string, unknown>; context: string; key?: string };
const sent: Frame[] = [];
let onProduce: ((frame: Frame) => void) | undefined;

class FakeSocket implements WebSocketLike {
  readyState = 0;
  onopen: ((ev: unknown) => void) | null = null;
  onclose: ((ev: { code: number; reason: string }) => void) | null = null;
  onerror: ((ev: unknown) => void) | null = null;
  onmessage: ((ev: { data: unknown }) => void) | null = null;
  constructor(readonly url: string) {
    setTimeout(() => {
      this.readyState = 1;
      this.onopen?.({});
    }, 1);
  }
  send(data: string): void {
    if (!this.url.includes("/producer/")) return; // the consumer's acks
    const frame = JSON.parse(data) as Frame;
    sent.push(frame);
    onProduce?.(frame);
    setTimeout(() => this.onmessage?.({ data: JSON.stringify({ result: "ok", messageId: "m", context: frame.context }) }), 2);
  }
  close(): void {
    this.readyState = 3;
  }
}

const payload = new Uint8Array(40000).map((_, i) => i % 251);
const client = new DasfClient({ broker: "ws://fake:1", topic: "t", maxPayloadSize: 4096, WebSocket: FakeSocket });
const out: Record<string, unknown> = {};
try {
  // 1. a whole upload: every fragment keyed by its transfer, no marker
  await client.request(payload, "request", { timeoutMs: 300 }).catch((e: unknown) => (out["wholeError"] = String(e)));
  out["whole"] = sent.map((f) => ({ key: f.key ?? null, props: f.properties, size: f.payload.length }));
  sent.length = 0;

  // 2. cancelled after the third fragment: the rest is not sent, the marker is
  const controller = new AbortController();
  onProduce = (frame) => {
    if (frame.properties["fragment"] === 2) controller.abort();
  };
  await client.request(payload, "request", { signal: controller.signal }).catch((e: unknown) => (out["cancelError"] = String(e)));
  await new Promise((r) => setTimeout(r, 50));
  out["cancelled"] = sent.map((f) => ({ key: f.key ?? null, props: f.properties, size: f.payload.length }));
} finally {
  client.close();
}
console.log(JSON.stringify(out));
