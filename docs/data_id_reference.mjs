#!/usr/bin/env node
// Reference implementation of the canonical data_id (docs/data-id.md) in
// JavaScript, using only Node's standard library.
//
//   node docs/data_id_reference.mjs docs/data_id_vectors.json
//       check every vector; exit 1 on the first mismatch
//   echo '{"x": 1}' | node docs/data_id_reference.mjs [--timestamp TIME]
//       print the data_id of the JSON object on stdin

import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { pathToFileURL } from "node:url";

// uuid5(NAMESPACE_URL, "mlf-middleware:data_id:v1")
const URL_NAMESPACE = "6ba7b8119dad11d180b400c04fd430c8";
const NAMESPACE = uuid5(Buffer.from(URL_NAMESPACE, "hex"), "mlf-middleware:data_id:v1");

function uuid5(namespace, text) {
  const digest = createHash("sha1")
    .update(namespace)
    .update(Buffer.from(text, "utf8"))
    .digest()
    .subarray(0, 16);
  digest[6] = (digest[6] & 0x0f) | 0x50; // version 5
  digest[8] = (digest[8] & 0x3f) | 0x80; // RFC 4122 variant
  return digest;
}

// ---- JSON parsing that keeps integers beyond 2**53 exact (as BigInt) ----

function parseJson(text) {
  let at = 0;
  const fail = (what) => {
    throw new SyntaxError(`${what} at offset ${at}`);
  };
  const space = () => {
    while (at < text.length && " \t\n\r".includes(text[at])) at++;
  };
  const value = () => {
    space();
    const c = text[at];
    if (c === "{") return object();
    if (c === "[") return array();
    if (c === '"') return string();
    for (const [word, result] of [["true", true], ["false", false], ["null", null]]) {
      if (text.startsWith(word, at)) {
        at += word.length;
        return result;
      }
    }
    return number();
  };
  const object = () => {
    const out = new Map(); // insertion order; a repeated key keeps its last value
    at++;
    space();
    if (text[at] === "}") {
      at++;
      return out;
    }
    for (;;) {
      space();
      if (text[at] !== '"') fail("expected a key");
      const key = string();
      space();
      if (text[at++] !== ":") fail("expected ':'");
      out.delete(key);
      out.set(key, value());
      space();
      const c = text[at++];
      if (c === "}") return out;
      if (c !== ",") fail("expected ',' or '}'");
    }
  };
  const array = () => {
    const out = [];
    at++;
    space();
    if (text[at] === "]") {
      at++;
      return out;
    }
    for (;;) {
      out.push(value());
      space();
      const c = text[at++];
      if (c === "]") return out;
      if (c !== ",") fail("expected ',' or ']'");
    }
  };
  const string = () => {
    const match = /^"(?:[^"\\\u0000-\u001f]|\\.)*"/su.exec(text.slice(at));
    if (!match) fail("bad string");
    at += match[0].length;
    return JSON.parse(match[0]); // may hold lone surrogates: normalised later
  };
  const number = () => {
    const match = /^-?(?:0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?/.exec(text.slice(at));
    if (!match) fail("unexpected character");
    at += match[0].length;
    const token = match[0];
    const isInteger = match[1] === undefined && match[2] === undefined;
    if (isInteger && !Number.isSafeInteger(Number(token))) return BigInt(token);
    return Number(token);
  };
  const result = value();
  space();
  if (at !== text.length) fail("trailing characters");
  return result;
}

// ---- step 1: normalise (for JSON input: strings and non-finite numbers) ----

function wellFormed(s) {
  // a lone surrogate becomes U+FFFD
  return s.replace(/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g, "\ufffd");
}

function normalise(v) {
  if (typeof v === "string") return wellFormed(v);
  if (typeof v === "number") {
    if (Number.isNaN(v)) return "NaN";
    if (!Number.isFinite(v)) return v > 0 ? "Infinity" : "-Infinity";
    return v;
  }
  if (Array.isArray(v)) return v.map(normalise);
  if (v instanceof Map) {
    const out = new Map();
    for (const [key, item] of v) {
      const name = wellFormed(key);
      if (out.has(name)) throw new Error(`two keys become ${JSON.stringify(name)}`);
      out.set(name, normalise(item));
    }
    return out;
  }
  return v; // true, false, null, BigInt
}

// ---- step 2: RFC 8785 (with exact digits for integers beyond 2**53) ----

function canonical(v) {
  if (v === null) return "null";
  if (typeof v === "boolean") return v ? "true" : "false";
  if (typeof v === "bigint") return v.toString();
  if (typeof v === "number") return String(v); // ECMAScript Number::toString; -0 is "0"
  if (typeof v === "string") return JSON.stringify(v);
  if (Array.isArray(v)) return "[" + v.map(canonical).join(",") + "]";
  // default sort compares UTF-16 code units, as RFC 8785 requires
  const keys = [...v.keys()].sort();
  return "{" + keys.map((k) => JSON.stringify(k) + ":" + canonical(v.get(k))).join(",") + "}";
}

// ---- step 3: the timestamp in UTC with microseconds ----

function utcTimestamp(text) {
  const m = /^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,6}))?([Zz]|[+-]\d{2}:\d{2})?$/.exec(text);
  if (!m) throw new Error(`not an RFC 3339 date-time: ${text}`);
  const [, y, mo, d, h, mi, s, fraction = "", zone = "Z"] = m;
  let minutes = 0; // the zone's offset east of UTC
  if (zone.toUpperCase() !== "Z") {
    minutes = (zone[0] === "-" ? -1 : 1) * (Number(zone.slice(1, 3)) * 60 + Number(zone.slice(4, 6)));
  }
  const date = new Date(0);
  date.setUTCFullYear(Number(y), Number(mo) - 1, Number(d));
  date.setUTCHours(Number(h), Number(mi) - minutes, Number(s), 0);
  const pad = (n, width = 2) => String(n).padStart(width, "0");
  return (
    `${pad(date.getUTCFullYear(), 4)}-${pad(date.getUTCMonth() + 1)}-${pad(date.getUTCDate())}` +
    `T${pad(date.getUTCHours())}:${pad(date.getUTCMinutes())}:${pad(date.getUTCSeconds())}` +
    `.${fraction.padEnd(6, "0")}Z`
  );
}

// ---- step 4: the id ----

export function hashedText(jsonText, timestamp = null) {
  let text = canonical(normalise(parseJson(jsonText)));
  if (timestamp !== null && timestamp !== undefined) text += "|" + utcTimestamp(timestamp);
  return text;
}

export function dataId(jsonText, timestamp = null) {
  return uuid5(NAMESPACE, hashedText(jsonText, timestamp)).toString("hex");
}

function checkVectors(path) {
  const { vectors } = JSON.parse(readFileSync(path, "utf8"));
  for (const v of vectors) {
    const text = hashedText(v.input, v.timestamp);
    const id = dataId(v.input, v.timestamp);
    if (text !== v.text || id !== v.data_id) {
      console.error(`MISMATCH ${v.name}\n  text ${JSON.stringify(text)}\n  want ${JSON.stringify(v.text)}\n  id   ${id}\n  want ${v.data_id}`);
      process.exit(1);
    }
  }
  console.log(`ok: ${vectors.length} vectors`);
}

function main(argv) {
  const at = argv.indexOf("--timestamp");
  const timestamp = at >= 0 ? argv[at + 1] : null;
  const files = argv.filter((a, i) => a !== "--timestamp" && (at < 0 || i !== at + 1));
  if (files.length) return checkVectors(files[0]);
  console.log(dataId(readFileSync(0, "utf8").trim(), timestamp));
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main(process.argv.slice(2));
}
