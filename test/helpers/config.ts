// Proxy config text for tests. Strings are written as YAML double-quoted scalars, which both
// buncracker's loader and nutcracker's libyaml read as plain strings.

export type Scalar = string | number | boolean;
/** A scalar, a list of scalars (e.g. `sentinels`), or a mapping of scalars (e.g. `tls: { cert, key }`). */
export type Setting = Scalar | readonly Scalar[] | Readonly<Record<string, Scalar>>;

/** One pool: `name:` followed by its settings (in the given order) and its `servers:` list. */
export function poolYaml(name: string, settings: Record<string, Setting>, servers: readonly string[]): string {
  const lines = [`${name}:`];
  for (const [key, value] of Object.entries(settings)) {
    if (typeof value !== "object") {
      lines.push(`  ${key}: ${scalar(value)}`);
      continue;
    }
    lines.push(`  ${key}:`);
    if (Array.isArray(value)) {
      for (const item of value as readonly Scalar[]) lines.push(`   - ${scalar(item)}`);
      continue;
    }
    for (const [inner, text] of Object.entries(value)) lines.push(`    ${inner}: ${scalar(text)}`);
  }
  lines.push("  servers:");
  for (const server of servers) lines.push(`   - ${scalar(server)}`);
  return lines.join("\n") + "\n";
}

const scalar = (value: Scalar): string => (typeof value === "string" ? JSON.stringify(value) : String(value));

/** A server line: `host:port:weight [name]`. */
export const serverLine = (address: string, weight = 1, name?: string): string =>
  `${address}:${weight}${name === undefined ? "" : ` ${name}`}`;
