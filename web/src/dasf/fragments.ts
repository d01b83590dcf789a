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

import { decodeBase64, decodedLength, encodeBase64 } from "./base64";
import { crc32Hex } from "./crc32";

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
export { randomHex };

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
