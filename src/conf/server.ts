// One `servers:` entry, `host:port:weight [name]` or `/path.sock:weight [name]`, split from the
// right like twemproxy 0.5.0's conf_add_server, and the order twemproxy sorts servers into.

import { checkUnixPath, parseHost } from "./address.ts";
import type { ServerConfig } from "./types.ts";
import { parseDecimal, parsePort, quote, ValueError } from "./value.ts";

/** libmemcached compatibility: an unnamed server on this port is hashed by its host alone. */
const KETAMA_DEFAULT_PORT = 11211;

const FORMS = `"host:port:weight [name]" or "/path.sock:weight [name]"`;

export function parseServer(text: string): ServerConfig {
  const space = text.lastIndexOf(" ");
  const pname = space < 0 ? text : text.slice(0, space);
  const name = space < 0 ? null : text.slice(space + 1);
  if (name === "") throw new ValueError(`${quote(text)} ends with a space but has no name after it`);
  if (pname.includes(" ")) throw new ValueError(`${quote(text)} has more than one name; expected ${FORMS}`);

  const weightColon = pname.lastIndexOf(":");
  if (weightColon < 0) throw new ValueError(`${quote(text)} has no weight; expected ${FORMS}`);
  const weight = parseDecimal(pname.slice(weightColon + 1), "weight");
  if (weight === 0) throw new ValueError(`${quote(text)} has weight 0; the weight must be greater than 0`);
  const address = pname.slice(0, weightColon);

  if (address.startsWith("/")) {
    if (address.includes(":")) {
      throw new ValueError(`${quote(text)}: a unix socket path cannot contain ":"; expected ${FORMS}`);
    }
    checkUnixPath(address);
    const addr = { spec: address, host: address, port: 0, unix: true, perm: null };
    return server(pname, name, weight, addr, `${address}:`);
  }

  const portColon = address.lastIndexOf(":");
  if (portColon < 0) throw new ValueError(`${quote(text)} has no port or no weight; expected ${FORMS}`);
  const hostText = address.slice(0, portColon);
  const portText = address.slice(portColon + 1);
  const port = parsePort(portText);
  const addr = { spec: address, host: parseHost(hostText), port, unix: false, perm: null };
  return server(pname, name, weight, addr, port === KETAMA_DEFAULT_PORT ? hostText : address);
}

function server(
  pname: string,
  name: string | null,
  weight: number,
  addr: ServerConfig["addr"],
  unnamed: string,
): ServerConfig {
  // twemproxy keys its stats JSON by the same effective name it hashes and sorts by
  // (checked against nutcracker 0.5.0, including unnamed "path:" and port-11211 "host").
  const effectiveName = name ?? unnamed;
  return { addr, weight, name, effectiveName, statsName: effectiveName, pname };
}

/** twemproxy's string_compare on effective names: shorter first, then bytewise. */
export function compareServers(a: ServerConfig, b: ServerConfig): number {
  const x = Buffer.from(a.effectiveName, "utf8");
  const y = Buffer.from(b.effectiveName, "utf8");
  return x.length - y.length || Buffer.compare(x, y);
}
