// -t / --test-conf: load the config, print the verdict in nutcracker's words, return the exit
// code. Like nutcracker, everything goes to stderr; the reason comes first.

import { ConfigError, loadConfig } from "../conf/load.ts";

export type Print = (line: string) => void;

const toStderr: Print = (line) => process.stderr.write(`${line}\n`);

export function testConf(file: string, print: Print = toStderr): number {
  try {
    loadConfig(file, (warning) => print(`buncracker: warning: ${warning}`));
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    print(`buncracker: ${error.message}`);
    print(`nutcracker: configuration file '${file}' syntax is invalid`);
    return 1;
  }
  print(`nutcracker: configuration file '${file}' syntax is ok`);
  return 0;
}
