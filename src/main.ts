// buncracker: flags -> config -> proxy, or one of -h / -V / -D / -t.

import { parseArgs } from "./cli/args.ts";
import type { Options } from "./cli/options.ts";
import { testConf } from "./cli/testconf.ts";
import { infoText, usage } from "./cli/usage.ts";
import { ConfigError, loadConfig } from "./conf/load.ts";
import type { Config } from "./conf/types.ts";
import { bufferPool } from "./core/bytes.ts";
import { Proxy } from "./core/proxy.ts";
import { log } from "./log.ts";

function fail(message: string): never {
  process.stderr.write(message + "\n");
  process.exit(1);
}

function readConfig(opts: Options): Config {
  try {
    return loadConfig(opts.confFile);
  } catch (err) {
    if (err instanceof ConfigError) fail(`buncracker: ${err.message}`);
    throw err;
  }
}

function main(argv: readonly string[]): void {
  const opts = parseArgs(argv);
  if ("error" in opts) fail(`buncracker: ${opts.error}\n${usage()}`);
  const info = infoText(opts);
  if (info !== null) {
    process.stderr.write(info);
    process.exit(0);
  }
  if (opts.testConf) process.exit(testConf(opts.confFile));

  log.level = opts.verbosity;
  const config = readConfig(opts);
  bufferPool.setSize(opts.mbufSize);
  const proxy = new Proxy(config, opts.workers > 1);
  proxy.start();

  let draining = false;
  process.on("SIGTERM", () => {
    if (draining) process.exit(0);
    draining = true;
    log.notice("SIGTERM: draining");
    void proxy.drain(opts.drainTimeout).then(() => process.exit(0));
  });
  process.on("SIGINT", () => process.exit(0));
  process.on("SIGPIPE", () => {});
}

main(process.argv.slice(2));
