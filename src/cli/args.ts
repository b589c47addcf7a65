// getopt_long-style parsing of the flags in options.ts, as nutcracker reads them: clustered
// switches (-dt), values attached or separate (-v4, -v 4, --verbose=4, --verbose 4), long
// names abbreviated to any unambiguous prefix (--conf=FILE), and "--" ending the flags.

import { DEFAULTS, FLAGS, type Flag, type Options } from "./options.ts";

const BY_SHORT = new Map(FLAGS.filter((f) => f.short !== null).map((f) => [f.short!, f]));

/** `argv` is what follows the program name. On error the caller prints it and the usage, exits 1. */
export function parseArgs(argv: readonly string[]): Options | { error: string } {
  const options = { ...DEFAULTS };
  let i = 0;
  /** The value of `flag`: the rest of this argument, else the next argument (even if it starts with "-"). */
  const valueOf = (flag: Flag, attached: string | null, name: string): string | { error: string } => {
    if (attached !== null) return attached;
    if (i + 1 < argv.length) return argv[++i]!;
    return { error: `option ${name} requires ${flag.needs}` };
  };
  const apply = (flag: Flag, value: string | { error: string }): string | null =>
    typeof value === "string" ? flag.set(options, value) : value.error;

  for (; i < argv.length; i++) {
    const arg = argv[i]!;
    let error: string | null = null;
    if (arg === "--") {
      if (i + 1 < argv.length) error = `unexpected argument '${argv[i + 1]}'`;
      else break;
    } else if (arg.startsWith("--")) {
      const eq = arg.indexOf("=");
      const name = eq < 0 ? arg.slice(2) : arg.slice(2, eq);
      const attached = eq < 0 ? null : arg.slice(eq + 1);
      const found = findLong(name);
      if ("error" in found) error = found.error;
      else if (found.arg === null) {
        error = attached === null ? found.set(options, "") : `option '--${found.long}' doesn't allow an argument`;
      } else {
        error = apply(found, valueOf(found, attached, found.short ? `-${found.short}` : `--${found.long}`));
      }
    } else if (arg.startsWith("-") && arg.length > 1) {
      for (let j = 1; j < arg.length && error === null; j++) {
        const flag = BY_SHORT.get(arg[j]!);
        if (!flag) error = `invalid option -- '${arg[j]}'`;
        else if (flag.arg === null) error = flag.set(options, "");
        else {
          error = apply(flag, valueOf(flag, j + 1 < arg.length ? arg.slice(j + 1) : null, `-${flag.short}`));
          break;
        }
      }
    } else {
      error = `unexpected argument '${arg}'`;
    }
    if (error !== null) return { error };
  }
  return options;
}

/** The long flag named exactly `name`, else the only one `name` abbreviates. */
function findLong(name: string): Flag | { error: string } {
  const exact = FLAGS.find((f) => f.long === name);
  if (exact) return exact;
  const matches = name === "" ? [] : FLAGS.filter((f) => f.long.startsWith(name));
  if (matches.length === 1) return matches[0]!;
  if (matches.length === 0) return { error: `unrecognized option '--${name}'` };
  return { error: `option '--${name}' is ambiguous; possibilities: ${matches.map((f) => `'--${f.long}'`).join(" ")}` };
}
