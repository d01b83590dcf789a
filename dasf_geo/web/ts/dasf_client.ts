// The dasf_geo DASF WebSocket client (web/src/dasf/*.ts, joined by web/build.mjs).

// --- base64.ts
/**
 * Base64 to and from bytes, without Node's Buffer or the browser's atob, so
 * that the DASF client runs unchanged in browsers and in Node >= 20.
 */

const ALPHABET =
  "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const DECODE = new Int16Array(256).fill(-1);
for (let i = 0; i < ALPHABET.length; i++) DECODE[ALPHABET.charCodeAt(i)] = i;
// the URL-safe alphabet too, as some peers use it
DECODE["-".charCodeAt(0)] = 62;
DECODE["_".charCodeAt(0)] = 63;

/** The native base64 methods (ES2026), where the engine has them. */
interface NativeBase64 {
  toBase64?: () => string;
  setFromBase64?: (text: string) => { read: number; written: number };
}

/** Base64 text of `data`. */
export function encodeBase64(data: Uint8Array): string {
  const native = data as Uint8Array & NativeBase64;
  if (typeof native.toBase64 === "function") return native.toBase64();
  const chunks: string[] = [];
  const CHUNK = 3 * 16384;
  for (let start = 0; start < data.length; start += CHUNK) {
    const end = Math.min(start + CHUNK, data.length);
    let out = "";
    let i = start;
    for (; i + 2 < end; i += 3) {
      const n = (data[i]! << 16) | (data[i + 1]! << 8) | data[i + 2]!;
      out +=
        ALPHABET[n >> 18]! +
        ALPHABET[(n >> 12) & 63]! +
        ALPHABET[(n >> 6) & 63]! +
        ALPHABET[n & 63]!;
    }
    if (i < end) {
      const rest = end - i;
      const n = (data[i]! << 16) | (rest === 2 ? data[i + 1]! << 8 : 0);
      out += ALPHABET[n >> 18]! + ALPHABET[(n >> 12) & 63]!;
      out += rest === 2 ? ALPHABET[(n >> 6) & 63]! + "=" : "==";
    }
    chunks.push(out);
  }
  return chunks.join("");
}

/** How many bytes the base64 `text` decodes to. */
export function decodedLength(text: string): number {
  let len = text.length;
  while (len > 0 && text.charCodeAt(len - 1) === 61) len--; // "="
  return Math.floor((len * 3) / 4);
}

/**
 * Decode base64 `text` into `target` at `offset` (or into a new array).
 *
 * @throws Error naming the position of the first character that is not base64.
 */
export function decodeBase64(
  text: string,
  target?: Uint8Array,
  offset = 0,
): Uint8Array {
  const size = decodedLength(text);
  const out = target ?? new Uint8Array(size);
  if (offset + size > out.length) {
    throw new Error(
      `base64 text decodes to ${size} bytes, which do not fit at offset ${offset} of ${out.length}`,
    );
  }
  const view = out.subarray(offset, offset + size) as Uint8Array & NativeBase64;
  if (typeof view.setFromBase64 === "function") {
    try {
      const { read, written } = view.setFromBase64(text);
      if (read === text.length && written === size) return target ? out : view;
    } catch {
      // not standard base64 (e.g. the URL-safe alphabet): the loop below
      // decodes it or names the first bad character
    }
  }
  let pos = offset;
  let bits = 0;
  let count = 0;
  const end = text.length;
  for (let i = 0; i < end; i++) {
    const code = text.charCodeAt(i);
    if (code === 61) break; // "=": padding ends the data
    const value = code < 256 ? DECODE[code]! : -1;
    if (value < 0) {
      throw new Error(
        `not base64: character ${JSON.stringify(text[i])} at position ${i}`,
      );
    }
    bits = (bits << 6) | value;
    count++;
    if (count === 4) {
      out[pos++] = (bits >> 16) & 255;
      out[pos++] = (bits >> 8) & 255;
      out[pos++] = bits & 255;
      bits = 0;
      count = 0;
    }
  }
  if (count === 2) {
    out[pos++] = (bits >> 4) & 255;
  } else if (count === 3) {
    out[pos++] = (bits >> 10) & 255;
    out[pos++] = (bits >> 2) & 255;
  } else if (count === 1) {
    throw new Error("not base64: the text ends in the middle of a byte");
  }
  return target ? out : out.subarray(0, pos - offset);
}

// --- crc32.ts
/** CRC-32 (zlib's polynomial) of base64 text, as dasf_geo's `dasfGeoCrc32` property. */

const TABLE = (() => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
})();

/** CRC-32 of the ASCII text `text` as 8 lowercase hex digits. */
export function crc32Hex(text: string): string {
  let crc = 0xffffffff;
  for (let i = 0; i < text.length; i++) {
    crc = TABLE[(crc ^ text.charCodeAt(i)) & 255]! ^ (crc >>> 8);
  }
  return ((crc ^ 0xffffffff) >>> 0).toString(16).padStart(8, "0");
}

// --- fragments.ts
/**
 * Fragments, as the DASF reference cuts them and dasf_geo reads them.
 *
 * A payload whose base64 text is longer than `maxPayloadSize` characters
 * travels as several messages, each with `fragment` (0-based) and
 * `num_fragments` properties. Pieces are cut at multiples of 4 characters, so
 * each one is the base64 of one slice of the bytes; dasf_geo adds
 * `dasfGeoCrc32` (of the piece's text), `dasfGeoSize` (total bytes) and
 * `dasfGeoTransfer` (one id per payload), which other peers ignore.
 */


/** The reference's default largest payload of one message, in base64 characters. */
export const DEFAULT_MAX_PAYLOAD_SIZE = 512000;

/** Message properties as they travel: JSON values (Pulsar turns them into strings). */
export type Properties = Record<string, unknown>;

/** One message's share of a payload: its base64 text and its extra properties. */
export interface OutgoingFragment {
  payload: string;
  properties: Properties;
}

function randomHex(bytes: number): string {
  const data = new Uint8Array(bytes);
  globalThis.crypto.getRandomValues(data);
  return Array.from(data, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** A random id of `bytes` bytes as hex digits (response topics, transfers). */

/** The fragments of `data`, one at a time (only one piece's base64 exists at once). */
export function* splitPayload(
  data: Uint8Array,
  maxPayloadSize: number = DEFAULT_MAX_PAYLOAD_SIZE,
): Generator<OutgoingFragment> {
  if (!Number.isInteger(maxPayloadSize) || maxPayloadSize < 4) {
    throw new Error(
      `maxPayloadSize must be an integer of at least 4 characters, got ${maxPayloadSize}`,
    );
  }
  const chars = maxPayloadSize - (maxPayloadSize % 4);
  const pieceBytes = (chars / 4) * 3;
  if (4 * Math.ceil(data.length / 3) <= maxPayloadSize) {
    const text = encodeBase64(data);
    yield {
      payload: text,
      properties: { dasfGeoCrc32: crc32Hex(text), dasfGeoSize: data.length },
    };
    return;
  }
  const count = Math.ceil(data.length / pieceBytes);
  const transfer = randomHex(8);
  for (let index = 0; index < count; index++) {
    const text = encodeBase64(
      data.subarray(index * pieceBytes, (index + 1) * pieceBytes),
    );
    yield {
      payload: text,
      properties: {
        fragment: index,
        num_fragments: count,
        dasfGeoCrc32: crc32Hex(text),
        dasfGeoSize: data.length,
        dasfGeoTransfer: transfer,
      },
    };
  }
}

/** Longest reason an abort marker carries, in characters (as dasf_geo cuts it). */
export const MAX_ABORT_REASON = 200;

/**
 * The message that ends a fragmented payload its sender gave up: fragment 0's
 * numbering, size and transfer id, an empty payload and `dasfGeoAbort` with
 * the reason. A dasf_geo receiver drops what it holds of the transfer at once;
 * other peers see a duplicate of fragment 0 and ignore it.
 *
 * @throws Error when `first` is not the properties of fragment 0 of a
 *   fragmented payload.
 */
export function abortMarker(first: Properties, reason: string): OutgoingFragment {
  if (first["fragment"] !== 0 || !first["num_fragments"]) {
    throw new Error("an abort marker needs the properties of fragment 0 of a fragmented payload");
  }
  const properties: Properties = {};
  for (const key of ["fragment", "num_fragments", "dasfGeoSize", "dasfGeoTransfer"]) {
    if (key in first) properties[key] = first[key];
  }
  properties["dasfGeoAbort"] = (reason || "abandoned by its sender").slice(0, MAX_ABORT_REASON);
  return { payload: "", properties };
}

function intProperty(props: Properties, key: string): number | undefined {
  const value = props[key];
  if (value === undefined || value === null || value === "") return undefined;
  const n = typeof value === "number" ? value : Number(value);
  if (!Number.isInteger(n) || n < 0) {
    throw new Error(`the message property ${key} is not a non-negative integer: ${String(value)}`);
  }
  return n;
}

/** Progress of a reply arriving in fragments. */
export interface TransferProgress {
  received: number;
  total: number;
}

interface Transfer {
  count: number;
  transfer: string | undefined;
  size: number | undefined;
  pieces: (string | undefined)[];
  /** decoded bytes, when each piece is decoded into its place on arrival */
  buffer: Uint8Array | undefined;
  pieceBytes: number | undefined;
  decoded: boolean[];
  received: number;
}

/**
 * Joins the fragments of payloads, keyed by request (any order, duplicates ignored).
 *
 * `add` returns the payload's bytes once its last missing fragment arrives,
 * else `undefined`.
 */
export class Reassembler {
  private readonly transfers = new Map<string, Transfer>();

  constructor(private readonly maxSize: number = 1 << 30) {}

  /** Transfers still waiting for fragments. */
  get pending(): number {
    return this.transfers.size;
  }

  /** Forget the fragments of `key`. */
  drop(key: string): void {
    this.transfers.delete(key);
  }

  /** How far the transfer for `key` got, if one is under way. */
  progress(key: string): TransferProgress | undefined {
    const t = this.transfers.get(key);
    return t ? { received: t.received, total: t.count } : undefined;
  }

  /**
   * Add one message's payload text.
   *
   * @throws Error for a corrupt fragment (checksum), a payload above the
   *   size limit, or fragments that disagree; the transfer is dropped.
   */
  add(key: string, props: Properties, payload: string): Uint8Array | undefined {
    const crc = props["dasfGeoCrc32"];
    if (typeof crc === "string" && crc && crc32Hex(payload) !== crc.toLowerCase()) {
      this.transfers.delete(key);
      const which = props["fragment"] === undefined ? "the message" : `fragment ${String(props["fragment"])}`;
      throw new Error(`${which} is corrupt: its CRC-32 does not match dasfGeoCrc32`);
    }
    const size = intProperty(props, "dasfGeoSize");
    if (size !== undefined && size > this.maxSize) {
      this.transfers.delete(key);
      throw new Error(
        `the payload has ${size} bytes, more than the limit of ${this.maxSize} bytes`,
      );
    }
    const index = intProperty(props, "fragment");
    const count = intProperty(props, "num_fragments");
    if (index === undefined || count === undefined) {
      const data = decodeBase64(payload);
      if (size !== undefined && data.length !== size) {
        throw new Error(`the payload has ${data.length} bytes, but dasfGeoSize says ${size}`);
      }
      return data;
    }
    if (count < 1 || index >= count) {
      throw new Error(`fragment ${index} of ${count} is out of range`);
    }
    const transferId = typeof props["dasfGeoTransfer"] === "string" ? (props["dasfGeoTransfer"] as string) : undefined;
    let t = this.transfers.get(key);
    if (t && (t.count !== count || t.transfer !== transferId)) {
      // a new payload for the same request (a retry): start again
      t = undefined;
    }
    if (!t) {
      t = {
        count,
        transfer: transferId,
        size,
        pieces: new Array<string | undefined>(count).fill(undefined),
        buffer: undefined,
        pieceBytes: undefined,
        decoded: new Array<boolean>(count).fill(false),
        received: 0,
      };
      this.transfers.set(key, t);
    }
    if (t.pieces[index] !== undefined || t.decoded[index]) return undefined; // duplicate
    if (t.size !== undefined && index < count - 1 && payload.length % 4 === 0) {
      const pieceBytes = (payload.length / 4) * 3;
      if (t.pieceBytes === undefined) t.pieceBytes = pieceBytes;
      if (t.pieceBytes === pieceBytes && t.pieceBytes * (count - 1) < t.size) {
        t.buffer ??= new Uint8Array(t.size);
        decodeBase64(payload, t.buffer, index * pieceBytes);
        t.decoded[index] = true;
      } else {
        t.pieces[index] = payload;
      }
    } else {
      t.pieces[index] = payload;
    }
    t.received++;
    if (t.received < count) return undefined;
    this.transfers.delete(key);
    return this.finish(t);
  }

  private finish(t: Transfer): Uint8Array {
    if (t.buffer && t.pieceBytes !== undefined && t.size !== undefined) {
      // decoded in place except the pieces kept as text (the last one, or
      // those that arrived before the piece size was known)
      for (let i = 0; i < t.count; i++) {
        const text = t.pieces[i];
        if (text === undefined) continue;
        const offset = i * t.pieceBytes;
        if (offset + decodedLength(text) > t.size) {
          throw new Error(`fragment ${i} goes beyond the announced size of ${t.size} bytes`);
        }
        decodeBase64(text, t.buffer, offset);
      }
      const last = t.pieces[t.count - 1];
      const total = t.pieceBytes * (t.count - 1) + (last === undefined ? t.pieceBytes : decodedLength(last));
      if (total !== t.size) {
        throw new Error(`the fragments hold ${total} bytes, but dasfGeoSize says ${t.size}`);
      }
      return t.buffer;
    }
    // reference peers: pieces need not be multiples of 4 characters
    const data = decodeBase64(t.pieces.join(""));
    if (t.size !== undefined && data.length !== t.size) {
      throw new Error(`the payload has ${data.length} bytes, but dasfGeoSize says ${t.size}`);
    }
    if (data.length > this.maxSize) {
      throw new Error(`the payload has ${data.length} bytes, more than the limit of ${this.maxSize} bytes`);
    }
    return data;
  }
}

// --- client.ts
/**
 * A DASF client over the broker's WebSocket API, for browsers and Node >= 20.
 *
 * It speaks the protocol of dasf_geo and the DASF reference (demessaging):
 * requests are produced on the service's topic with `response_topic`,
 * `requestContext` and `messageType` properties; replies, progress reports
 * and pongs are consumed from a private response topic. Payloads larger than
 * one message travel as fragments in both directions. Dataset and DataArray
 * results come as raw NetCDF bytes (`dasfGeoAccept`), and Dataset arguments
 * can be sent as binary parts after the request's JSON (`dasfGeoParts`) to
 * backends that say they understand them.
 */


/** What the client needs of a WebSocket: the browser's and Node's (>= 22, or `ws`). */
export interface WebSocketLike {
  readonly readyState: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  onopen: ((ev: unknown) => void) | null;
  onclose: ((ev: { code: number; reason: string }) => void) | null;
  onerror: ((ev: unknown) => void) | null;
  onmessage: ((ev: { data: unknown }) => void) | null;
}

/** A WebSocket constructor (the global one, or `ws`'s). */
export type WebSocketConstructor = new (url: string) => WebSocketLike;

/** How to reach the broker and the service. */
export interface DasfClientOptions {
  /** Base URL of a Pulsar-style broker: `ws://127.0.0.1:8080` (paths `/ws/v2/...` are added). */
  broker?: string;
  /** Instead of `broker`: a plain websocket URL (dasf-broker-django layout, `{url}/{topic}`). */
  websocketUrl?: string;
  /** The service's topic. */
  topic: string;
  persistent?: boolean;
  tenant?: string;
  namespace?: string;
  /** A token sent as the `token` query parameter (browsers cannot set headers). */
  token?: string;
  /** Largest base64 text per message (default 512000). */
  maxPayloadSize?: number;
  /** Largest reply in bytes (default 1 GiB). */
  maxReplySize?: number;
  /** Give up on a call after this many milliseconds without a reply (default: never). */
  timeoutMs?: number;
  /** The WebSocket implementation (default: `globalThis.WebSocket`). */
  WebSocket?: WebSocketConstructor;
}

/** A deprogressapi tree report, as backends send them while a call runs. */
export interface ProgressReport {
  report_type?: string;
  report_id: string;
  status: "running" | "success" | "error";
  step_message?: string;
  steps?: number;
  children?: ProgressReport[];
  [key: string]: unknown;
}

/** One entry of a structured validation error (pydantic's `errors()`). */
export interface StructuredError {
  loc: (string | number)[];
  msg: string;
  type: string;
  [key: string]: unknown;
}

/** The backend answered with an error. */
export class DasfRemoteError extends Error {
  constructor(
    message: string,
    /** The structured validation errors (`dasfGeoErrors`), if any. */
    readonly errors: StructuredError[] = [],
  ) {
    super(message);
    this.name = "DasfRemoteError";
  }
}

/** The broker or the connection failed, or the call timed out. */
export class DasfConnectionError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "DasfConnectionError";
  }
}

/** A result sent as raw bytes, e.g. the NetCDF of a Dataset. */
export interface BinaryValue {
  mediaType: string;
  data: Uint8Array;
}

/** A binary argument: the NetCDF of a Dataset or DataArray. */
export interface BinaryPart {
  data: Uint8Array;
  /** e.g. `application/x-netcdf; xarray=Dataset` */
  type: string;
}

/** A reply as it arrived. */
export interface DasfReply {
  messageType: string;
  status: string;
  properties: Properties;
  payload: Uint8Array;
}

/** Options of one call. */
export interface CallOptions {
  /** Called with each progress report while the call runs. */
  onProgress?: (report: ProgressReport) => void;
  /** Called as a large reply's fragments arrive. */
  onTransfer?: (received: number, total: number) => void;
  /** Media types taken as a raw binary reply (sent as `dasfGeoAccept`). */
  accept?: string[];
  /** Abort the call. */
  signal?: AbortSignal;
  /** More request properties (e.g. `dasfGeoMaxSize`). */
  properties?: Properties;
  /** Give up after this many milliseconds without a reply (overrides the client's `timeoutMs`). */
  timeoutMs?: number;
}

/** The media types of Dataset and DataArray results taken as raw NetCDF. */
export const NETCDF_ACCEPT = [
  "application/x-netcdf; xarray=Dataset",
  "application/x-netcdf; xarray=DataArray",
];

/** The placeholder for binary part `n` (1-based) inside a multipart request's JSON. */
export function partPlaceholder(n: number): { $dasfGeoPart: number } {
  return { $dasfGeoPart: n };
}

interface Pending {
  resolve: (reply: DasfReply) => void;
  reject: (error: Error) => void;
  options: CallOptions;
  timer: ReturnType<typeof setTimeout> | undefined;
}

const OPEN = 1;
const MAX_CONTEXT = 2 ** 31;
const WINDOW = 16;
const encoder = new TextEncoder();
const decoder = new TextDecoder();

function frameText(data: unknown): string {
  if (typeof data === "string") return data;
  if (data instanceof ArrayBuffer) return decoder.decode(new Uint8Array(data));
  if (ArrayBuffer.isView(data)) {
    return decoder.decode(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
  }
  return String(data);
}

function errorText(payload: Uint8Array): string {
  return decoder.decode(payload);
}

/**
 * A connection to one DASF service: `call`, `ping` and `apiInfo`.
 *
 * Sockets open on first use; a closed socket is opened again by the next call.
 */
export class DasfClient {
  readonly topic: string;
  readonly responseTopic: string;
  private readonly options: DasfClientOptions;
  private readonly WS: WebSocketConstructor;
  private consumer: Promise<WebSocketLike> | undefined;
  private producer: Promise<WebSocketLike> | undefined;
  private readonly pending = new Map<string, Pending>();
  private readonly acks = new Map<string, { resolve: () => void; reject: (e: Error) => void }>();
  private readonly reassembler: Reassembler;
  private nextContext: number;
  private sendCounter = 0;
  private features: Promise<string[]> | undefined;
  private closed = false;

  constructor(options: DasfClientOptions) {
    if (!options.topic) throw new Error("DasfClient needs a topic");
    if (!options.broker && !options.websocketUrl) {
      throw new Error("DasfClient needs a broker URL (broker: 'ws://HOST:PORT') or a websocketUrl");
    }
    const WS = options.WebSocket ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
    if (!WS) {
      throw new Error(
        "no WebSocket implementation: use a browser or Node >= 22, run Node 20 with " +
          "--experimental-websocket, or pass the `ws` package's WebSocket as the WebSocket option",
      );
    }
    this.WS = WS;
    this.options = options;
    this.topic = options.topic;
    this.responseTopic = `${options.topic}_${randomHex(16)}`;
    this.reassembler = new Reassembler(options.maxReplySize ?? 1 << 30);
    const start = new Uint32Array(1);
    globalThis.crypto.getRandomValues(start);
    this.nextContext = start[0]! % (MAX_CONTEXT / 2);
  }

  private url(kind: "producer" | "consumer", topic: string): string {
    const o = this.options;
    let url: string;
    if (o.websocketUrl) {
      const base = o.websocketUrl.replace(/\/+$/, "");
      url = kind === "producer" ? `${base}/${topic}` : `${base}/${topic}/${topic}-sub`;
    } else {
      const base = (o.broker ?? "").replace(/\/+$/, "");
      const kindOf = o.persistent ? "persistent" : "non-persistent";
      const path = `${kindOf}/${o.tenant ?? "public"}/${o.namespace ?? "default"}/${topic}`;
      url =
        kind === "producer"
          ? `${base}/ws/v2/producer/${path}`
          : `${base}/ws/v2/consumer/${path}/${topic}-sub`;
    }
    if (o.token) url += `${url.includes("?") ? "&" : "?"}token=${encodeURIComponent(o.token)}`;
    return url;
  }

  private open(kind: "producer" | "consumer"): Promise<WebSocketLike> {
    const url = this.url(kind, kind === "producer" ? this.topic : this.responseTopic);
    return new Promise<WebSocketLike>((resolve, reject) => {
      let ws: WebSocketLike;
      try {
        ws = new this.WS(url);
      } catch (exc) {
        reject(new DasfConnectionError(`cannot open ${url}: ${String(exc)}`));
        return;
      }
      let opened = false;
      ws.onopen = () => {
        opened = true;
        resolve(ws);
      };
      ws.onerror = () => {
        if (!opened) reject(new DasfConnectionError(`cannot connect to the broker at ${url}`));
      };
      ws.onclose = (ev) => {
        if (kind === "producer") this.producer = undefined;
        else this.consumer = undefined;
        if (!opened) {
          reject(new DasfConnectionError(`cannot connect to the broker at ${url}` + (ev.reason ? `: ${ev.reason}` : "")));
          return;
        }
        const why = `the connection to the broker closed (code ${ev.code}${ev.reason ? `: ${ev.reason}` : ""})`;
        if (kind === "consumer") this.failAll(why);
        else for (const [, ack] of this.acks) ack.reject(new DasfConnectionError(why));
        if (kind === "producer") this.acks.clear();
      };
      ws.onmessage = (ev) => {
        if (kind === "consumer") this.onConsumerFrame(ws, frameText(ev.data));
        else this.onAck(frameText(ev.data));
      };
    });
  }

  private socket(kind: "producer" | "consumer"): Promise<WebSocketLike> {
    if (this.closed) return Promise.reject(new DasfConnectionError("the client is closed"));
    if (kind === "producer") {
      this.producer ??= this.open("producer").catch((e: unknown) => {
        this.producer = undefined;
        throw e;
      });
      return this.producer;
    }
    this.consumer ??= this.open("consumer").catch((e: unknown) => {
      this.consumer = undefined;
      throw e;
    });
    return this.consumer;
  }

  private failAll(why: string): void {
    for (const [key, p] of this.pending) {
      if (p.timer) clearTimeout(p.timer);
      this.pending.delete(key);
      this.reassembler.drop(key);
      p.reject(new DasfConnectionError(why));
    }
  }

  private onAck(text: string): void {
    let frame: { result?: unknown; context?: unknown; errorMsg?: unknown };
    try {
      frame = JSON.parse(text) as typeof frame;
    } catch {
      return;
    }
    const context = String(frame.context ?? "");
    const ack = this.acks.get(context);
    if (!ack) return;
    this.acks.delete(context);
    if (frame.result === "ok") ack.resolve();
    else {
      ack.reject(
        new DasfConnectionError(
          `the broker refused the message: ${String(frame.result)}${frame.errorMsg ? ` (${String(frame.errorMsg)})` : ""}`,
        ),
      );
    }
  }

  private onConsumerFrame(ws: WebSocketLike, text: string): void {
    let frame: { messageId?: unknown; payload?: unknown; properties?: unknown };
    try {
      frame = JSON.parse(text) as typeof frame;
    } catch {
      return;
    }
    if (frame.messageId !== undefined && ws.readyState === OPEN) {
      ws.send(JSON.stringify({ messageId: frame.messageId }));
    }
    const props = (frame.properties ?? {}) as Properties;
    const key = String(props["requestContext"] ?? "");
    const p = this.pending.get(key);
    if (!p) return;
    const messageType = String(props["messageType"] ?? "");
    const payload = typeof frame.payload === "string" ? frame.payload : "";
    if (messageType === "progress") {
      try {
        const report = JSON.parse(decoder.decode(decodeBase64(payload))) as ProgressReport;
        p.options.onProgress?.(report);
      } catch {
        // a progress report we cannot read does not end the call
      }
      return;
    }
    let data: Uint8Array | undefined;
    try {
      data = this.reassembler.add(key, props, payload);
    } catch (exc) {
      this.settle(key, undefined, exc instanceof Error ? exc : new Error(String(exc)));
      return;
    }
    if (data === undefined) {
      const progress = this.reassembler.progress(key);
      if (progress) p.options.onTransfer?.(progress.received, progress.total);
      return;
    }
    this.settle(key, {
      messageType,
      status: String(props["status"] ?? ""),
      properties: props,
      payload: data,
    });
  }

  private settle(key: string, reply?: DasfReply, error?: Error): void {
    const p = this.pending.get(key);
    if (!p) return;
    this.pending.delete(key);
    this.reassembler.drop(key);
    if (p.timer) clearTimeout(p.timer);
    if (error) p.reject(error);
    else p.resolve(reply!);
  }

  /**
   * Send one message and wait for the broker's ack. A `key` (the transfer id
   * of a fragment) keeps all messages of one payload with one consumer of a
   * Shared subscription, as dasf_geo's Python callers do: without it, the
   * fragments of one request would be spread over the backends serving the
   * topic.
   */
  private async produce(ws: WebSocketLike, payload: string, properties: Properties, key?: string): Promise<void> {
    const context = `m${++this.sendCounter}`;
    const acked = new Promise<void>((resolve, reject) => this.acks.set(context, { resolve, reject }));
    ws.send(JSON.stringify(key === undefined ? { payload, properties, context } : { payload, properties, context, key }));
    return acked;
  }

  /**
   * Send a request payload and wait for its reply (the low level).
   *
   * @throws DasfConnectionError when the broker cannot be reached, refuses
   *   the request, the connection drops, or `timeoutMs` passes.
   */
  async request(
    payload: Uint8Array,
    messageType = "request",
    options: CallOptions = {},
    extra: Properties = {},
  ): Promise<DasfReply> {
    const consumer = this.socket("consumer");
    const producer = this.socket("producer");
    await consumer;
    const ws = await producer;
    const context = String(this.nextContext++ % MAX_CONTEXT);
    const props: Properties = {
      response_topic: this.responseTopic,
      requestContext: context,
      messageType,
      ...extra,
      ...(options.properties ?? {}),
    };
    if (options.accept?.length) props["dasfGeoAccept"] = options.accept.join(",");
    const reply = new Promise<DasfReply>((resolve, reject) => {
      const timeout = options.timeoutMs ?? this.options.timeoutMs;
      const timer =
        timeout === undefined
          ? undefined
          : setTimeout(
              () =>
                this.settle(
                  context,
                  undefined,
                  new DasfConnectionError(
                    `no reply from the service on topic '${this.topic}' within ${timeout / 1000} s` +
                      " (is it running?)",
                  ),
                ),
              timeout,
            );
      this.pending.set(context, { resolve, reject, options, timer });
    });
    // settled (cancelled, timed out) while the fragments are still being
    // sent, before the caller awaits it: not an unhandled rejection (which
    // ends a Node process); the caller still gets the error
    reply.catch(() => undefined);
    const signal = options.signal;
    if (signal) {
      const abort = () =>
        this.settle(context, undefined, signal.reason instanceof Error ? signal.reason : new Error("the call was cancelled"));
      if (signal.aborted) abort();
      else signal.addEventListener("abort", abort, { once: true });
    }
    let first: Properties | undefined;
    let sent = 0;
    try {
      const inFlight: Promise<void>[] = [];
      for (const fragment of splitPayload(payload, this.options.maxPayloadSize ?? DEFAULT_MAX_PAYLOAD_SIZE)) {
        if (!this.pending.has(context)) break;
        if (fragment.properties["fragment"] === 0) first = fragment.properties;
        const key = fragment.properties["dasfGeoTransfer"] as string | undefined;
        inFlight.push(this.produce(ws, fragment.payload, { ...props, ...fragment.properties }, key));
        sent++;
        if (inFlight.length >= WINDOW) await inFlight.shift();
      }
      await Promise.all(inFlight);
    } catch (exc) {
      this.settle(context, undefined, exc instanceof Error ? exc : new Error(String(exc)));
    }
    if (first !== undefined && sent < (first["num_fragments"] as number)) {
      // given up half-way (cancelled, timed out, a fragment refused): the
      // backend frees what it holds of the request at once, not after its
      // fragment timeout (docs/protocol.md, "Abandoned uploads")
      this.sendAbort(ws, props, first, signal?.aborted ? "the sending was cancelled" : "the sending broke off");
    }
    return reply;
  }

  private sendAbort(ws: WebSocketLike, props: Properties, first: Properties, reason: string): void {
    const marker = abortMarker(first, reason);
    // best effort, its ack not waited for: where the connection is gone, the
    // backend gives the fragments up after its fragment timeout
    const key = marker.properties["dasfGeoTransfer"] as string;
    this.produce(ws, marker.payload, { ...props, ...marker.properties }, key).catch(() => undefined);
  }

  /**
   * Call a function: `request` is the request's JSON object
   * (`{"func_name": ..., args}`, or `{"class_name": ..., "function": {...}}`).
   *
   * Returns the result's JSON, or a {@link BinaryValue} when the backend sent
   * raw bytes (a Dataset result asked for with `accept`).
   *
   * @throws DasfRemoteError with the backend's message and structured errors.
   */
  async call(request: object, options: CallOptions = {}, parts: BinaryPart[] = []): Promise<unknown> {
    let payload = encoder.encode(JSON.stringify(request));
    const extra: Properties = {};
    if (parts.length) {
      const specs = [{ size: payload.length, type: "application/json" }, ...parts.map((p) => ({ size: p.data.length, type: p.type }))];
      const total = specs.reduce((n, s) => n + s.size, 0);
      const joined = new Uint8Array(total);
      joined.set(payload, 0);
      let offset = payload.length;
      for (const part of parts) {
        joined.set(part.data, offset);
        offset += part.data.length;
      }
      payload = joined;
      extra["dasfGeoParts"] = JSON.stringify(specs);
    }
    const reply = await this.request(payload, "request", options, extra);
    return DasfClient.value(reply);
  }

  /** The result of a reply, or the error it carries. */
  static value(reply: DasfReply): unknown {
    if (reply.status === "error") {
      let errors: StructuredError[] = [];
      const raw = reply.properties["dasfGeoErrors"];
      if (typeof raw === "string" && raw) {
        try {
          const parsed: unknown = JSON.parse(raw);
          if (Array.isArray(parsed)) errors = parsed as StructuredError[];
        } catch {
          // the text alone still says what went wrong
        }
      }
      throw new DasfRemoteError(errorText(reply.payload), errors);
    }
    const encoding = reply.properties["dasfGeoEncoding"];
    if (typeof encoding === "string" && encoding) {
      return { mediaType: encoding, data: reply.payload } satisfies BinaryValue;
    }
    const text = decoder.decode(reply.payload);
    try {
      return JSON.parse(text) as unknown;
    } catch {
      throw new DasfRemoteError(`the backend's reply is not JSON: ${JSON.stringify(text.slice(0, 200))}`);
    }
  }

  /** Ping the service; resolves with the extensions it understands (`dasfGeoFeatures`). */
  async ping(options: CallOptions = {}): Promise<string[]> {
    const reply = await this.request(new Uint8Array(0), "ping", options);
    return DasfClient.featureList(reply);
  }

  private static featureList(reply: DasfReply): string[] {
    const raw = reply.properties["dasfGeoFeatures"];
    return typeof raw === "string" && raw ? raw.split(",").map((s) => s.trim()).filter(Boolean) : [];
  }

  /** The extensions the service understands (asked once, with a ping). */
  supports(feature: string): Promise<boolean> {
    this.features ??= this.ping().catch((e: unknown) => {
      this.features = undefined;
      throw e;
    });
    return this.features.then((f) => f.includes(feature));
  }

  /** The service's API info: its functions and classes with their JSON schemas. */
  async apiInfo(options: CallOptions = {}): Promise<ApiInfo> {
    const reply = await this.request(new Uint8Array(0), "api_info", options);
    if (reply.status === "error") DasfClient.value(reply);
    const raw = reply.properties["api_info"];
    if (typeof raw !== "string") {
      throw new DasfRemoteError(`the service on topic '${this.topic}' sent no api_info`);
    }
    this.features ??= Promise.resolve(DasfClient.featureList(reply));
    return JSON.parse(raw) as ApiInfo;
  }

  /** Close the sockets; pending calls fail. */
  close(): void {
    this.closed = true;
    this.failAll("the client was closed");
    for (const socket of [this.consumer, this.producer]) {
      socket?.then((ws) => ws.close(1000, "done")).catch(() => undefined);
    }
    this.consumer = undefined;
    this.producer = undefined;
  }
}

/** A JSON schema (as far as the client needs to know). */
export type JsonSchema = Record<string, unknown>;

/** One function (or method) in the API info. */
export interface FunctionInfo {
  name: string;
  rpc_schema: JsonSchema;
  return_schema: JsonSchema;
}

/** One class in the API info. */
export interface ClassInfo {
  name: string;
  rpc_schema: JsonSchema;
  methods: FunctionInfo[];
}

/** The API info a DASF backend sends for an `api_info` request. */
export interface ApiInfo {
  functions: FunctionInfo[];
  classes: ClassInfo[];
  rpc_schema?: JsonSchema;
  [key: string]: unknown;
}
