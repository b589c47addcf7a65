// Throwaway certificates for the TLS suites, made with the openssl command line in a temp dir:
// a CA, certificates it signs (a server certificate for 127.0.0.1 and localhost, a client
// certificate, an expired server and an expired client certificate, one for a wrong name), and a second, unrelated CA with its own
// server and client certificates (what a peer that trusts only the first CA must refuse).
// EC P-256 keys: a set is made in well under a second.

import { readFileSync, writeFileSync } from "node:fs";
import { runToEnd } from "./process.ts";
import { makeTempDir, type TempDir } from "./tmp.ts";

/** A certificate and its key, as PEM files. */
export interface CertFiles {
  readonly cert: string;
  readonly key: string;
}

export interface CertSet {
  readonly dir: TempDir;
  /** The CA that signs everything below except `other*`. */
  readonly ca: string;
  /** For 127.0.0.1, ::1 and localhost; serverAuth. */
  readonly server: CertFiles;
  /** The same names, signed by the same CA, a second time: what a rotation swaps in. */
  readonly server2: CertFiles;
  /** Client certificate (CN buncracker-client); clientAuth. */
  readonly client: CertFiles;
  /** For 127.0.0.1 and localhost, but its validity ended yesterday. */
  readonly expired: CertFiles;
  /** A client certificate of the CA whose validity ended yesterday. */
  readonly expiredClient: CertFiles;
  /** Valid, but only for wrong.example (not 127.0.0.1 or localhost). */
  readonly wrongName: CertFiles;
  /** A second CA, and a server and a client certificate it signed. */
  readonly otherCa: string;
  readonly otherServer: CertFiles;
  readonly otherClient: CertFiles;
  /** Removes the directory. */
  remove(): void;
}

const LOCAL_NAMES = "subjectAltName=IP:127.0.0.1,IP:::1,DNS:localhost";

async function openssl(args: string[]): Promise<void> {
  const { code, stderr } = await runToEnd(["openssl", ...args], 20000);
  if (code !== 0) throw new Error(`openssl ${args.join(" ")} failed (${code}): ${stderr}`);
}

const keyArgs = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"];

async function makeCa(dir: TempDir, name: string): Promise<CertFiles> {
  const files = { cert: dir.file(`${name}.crt`), key: dir.file(`${name}.key`) };
  await openssl([
    "req", "-x509", ...keyArgs, "-keyout", files.key, "-out", files.cert, "-days", "2",
    "-subj", `/CN=${name}`, "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
  ]);
  return files;
}

/** A certificate signed by `ca` for `subject`, with these X.509 v3 extensions, valid `days`
 *  (negative: it expired that many days ago). */
async function issue(
  dir: TempDir,
  ca: CertFiles,
  name: string,
  subject: string,
  extensions: string[],
  days = 2,
): Promise<CertFiles> {
  const files = { cert: dir.file(`${name}.crt`), key: dir.file(`${name}.key`) };
  const csr = dir.file(`${name}.csr`);
  const ext = dir.file(`${name}.ext`);
  writeFileSync(ext, extensions.join("\n") + "\n");
  await openssl(["req", ...keyArgs, "-keyout", files.key, "-out", csr, "-subj", `/CN=${subject}`]);
  await openssl([
    "x509", "-req", "-in", csr, "-CA", ca.cert, "-CAkey", ca.key, "-set_serial", serial(),
    "-out", files.cert, "-days", String(days), "-extfile", ext,
  ]);
  return files;
}

/** A random serial: certificates are issued in parallel, so no shared serial file. */
const serial = (): string => "0x" + crypto.getRandomValues(new Uint8Array(12)).reduce((t, b) => t + b.toString(16).padStart(2, "0"), "");

const SERVER_EXT = [LOCAL_NAMES, "extendedKeyUsage=serverAuth"];
const CLIENT_EXT = ["extendedKeyUsage=clientAuth"];

/** Makes a fresh set in a new temp dir (remove() it in afterAll). */
export async function makeCerts(): Promise<CertSet> {
  const dir = makeTempDir("bct-tls-");
  const ca = await makeCa(dir, "ca");
  const other = await makeCa(dir, "other-ca");
  const [server, server2, client, expired, expiredClient, wrongName, otherServer, otherClient] = await Promise.all([
    issue(dir, ca, "server", "localhost", SERVER_EXT),
    issue(dir, ca, "server2", "localhost", SERVER_EXT),
    issue(dir, ca, "client", "buncracker-client", CLIENT_EXT),
    issue(dir, ca, "expired", "localhost", SERVER_EXT, -1),
    issue(dir, ca, "expired-client", "buncracker-client", CLIENT_EXT, -1),
    issue(dir, ca, "wrong-name", "wrong.example", ["subjectAltName=DNS:wrong.example", "extendedKeyUsage=serverAuth"]),
    issue(dir, other, "other-server", "localhost", SERVER_EXT),
    issue(dir, other, "other-client", "buncracker-client", CLIENT_EXT),
  ]);
  return {
    dir,
    ca: ca.cert,
    server,
    server2,
    client,
    expired,
    expiredClient,
    wrongName,
    otherCa: other.cert,
    otherServer,
    otherClient,
    remove: () => dir.remove(),
  };
}

/** The PEM text of a file (for TLS options of test clients). */
export const pem = (path: string): string => readFileSync(path, "utf8");
