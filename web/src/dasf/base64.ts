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
