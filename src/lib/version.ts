// The versions the proxy reports: its own (package.json) and the twemproxy release it matches
// (stats JSON, -V, /metrics). Below every layer, so stats and cli read the same constants.

import pkg from "../../package.json" with { type: "json" };

/** The twemproxy release whose behaviour, flags and stats this proxy reproduces. */
export const TWEMPROXY_VERSION = "0.5.0";

/** buncracker's own version. */
export const VERSION: string = pkg.version;
