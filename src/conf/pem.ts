// The PEM files a config names (keys `tls` and `server_tls`), read and checked when the config
// loads: a missing file, a certificate or key that does not parse, or a key that does not belong
// to its certificate is a config error naming the file, not a failed handshake later. A reload
// reads them again, which is how certificates are rotated.

import { createPrivateKey, X509Certificate, type KeyObject } from "node:crypto";
import { readFileSync } from "node:fs";
import type { Config, PemFile } from "./types.ts";
import { quote, ValueError } from "./value.ts";

const CERTIFICATE = /-----BEGIN CERTIFICATE-----[^-]+-----END CERTIFICATE-----/g;

/** PEM texts read instead of the files, during one parse (withPemTexts): a worker parses the
 *  config its supervisor read, with the PEM files as they were then. */
let given: ReadonlyMap<string, string> | null = null;

/** Runs `parse` reading PEM files from `texts` first (null: from disk only). */
export function withPemTexts<T>(texts: ReadonlyMap<string, string> | null, parse: () => T): T {
  given = texts;
  try {
    return parse();
  } finally {
    given = null;
  }
}

/** Every PEM file `config` read, by path, as it was read. */
export function pemTexts(config: Config): Record<string, string> {
  const texts: Record<string, string> = {};
  for (const p of config.pools) {
    for (const f of [p.tls?.cert, p.tls?.key, p.tls?.ca, p.serverTls?.ca, p.serverTls?.cert, p.serverTls?.key]) {
      if (f !== null && f !== undefined) texts[f.path] = f.text;
    }
  }
  return texts;
}

function readText(path: string): string {
  const text = given?.get(path);
  if (text !== undefined) return text;
  try {
    return readFileSync(path, "utf8");
  } catch (error) {
    const reason = (error as NodeJS.ErrnoException).code ?? (error as Error).message;
    throw new ValueError(`cannot read ${quote(path)} (${reason})`);
  }
}

/** A file of one or more PEM certificates (a chain, or a CA bundle), each one checked. */
export function readCertificates(path: string): { file: PemFile; certs: X509Certificate[] } {
  const text = readText(path);
  const blocks = text.match(CERTIFICATE) ?? [];
  if (blocks.length === 0) throw new ValueError(`${quote(path)} holds no PEM certificate ("-----BEGIN CERTIFICATE-----")`);
  const certs = blocks.map((block, i) => {
    try {
      return new X509Certificate(block);
    } catch (error) {
      throw new ValueError(`${quote(path)}: certificate ${i + 1} does not parse (${(error as Error).message})`);
    }
  });
  return { file: { path, text }, certs };
}

/** A file holding one unencrypted PEM private key. */
export function readKey(path: string): { file: PemFile; key: KeyObject } {
  const text = readText(path);
  if (!text.includes("PRIVATE KEY-----")) throw new ValueError(`${quote(path)} holds no PEM private key`);
  if (text.includes("ENCRYPTED")) throw new ValueError(`${quote(path)}: encrypted private keys are not supported`);
  try {
    return { file: { path, text }, key: createPrivateKey(text) };
  } catch (error) {
    throw new ValueError(`${quote(path)}: the private key does not parse (${(error as Error).message})`);
  }
}

/** Throws unless `key` is the private key of `cert` (the first certificate of its file). */
export function checkKeyPair(cert: X509Certificate, certPath: string, key: KeyObject, keyPath: string): void {
  if (!cert.checkPrivateKey(key)) {
    throw new ValueError(`the key in ${quote(keyPath)} does not belong to the certificate in ${quote(certPath)}`);
  }
}
