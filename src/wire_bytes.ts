// Byte counts as backends measure them, for the presets' sizeOf. Internal: not exported from mod.ts.

/**
 * UTF-8 length of a string as TextEncoder would encode it (a lone surrogate
 * becomes U+FFFD, 3 bytes), without allocating the encoded copy.
 */
export function utf8Length(text: string): number {
  let bytes = text.length;
  for (let i = 0; i < text.length; i++) {
    const unit = text.charCodeAt(i);
    if (unit < 0x80) continue;
    if (unit < 0x800) {
      bytes += 1;
      continue;
    }
    if (unit >= 0xd800 && unit <= 0xdbff && i + 1 < text.length) {
      const next = text.charCodeAt(i + 1);
      if (next >= 0xdc00 && next <= 0xdfff) {
        // The pair's two units already count 2; its code point takes 4.
        bytes += 2;
        i++;
        continue;
      }
    }
    bytes += 2;
  }
  return bytes;
}

/** Bytes of a string (UTF-8) or of a binary view; NaN for anything else. */
export function bytesOf(value: unknown): number {
  if (typeof value === "string") return utf8Length(value);
  if (ArrayBuffer.isView(value)) return value.byteLength;
  return NaN;
}

/** UTF-8 bytes of a value's JSON text; NaN when it has none or JSON.stringify throws. */
export function jsonBytes(body: unknown): number {
  let text: string | undefined;
  try {
    text = JSON.stringify(body);
  } catch {
    // BigInt, a cycle, or a throwing toJSON: sendBatch would throw too.
    return NaN;
  }
  // undefined, a function or a symbol has no JSON text; sendBatch refuses it.
  return typeof text === "string" ? utf8Length(text) : NaN;
}
