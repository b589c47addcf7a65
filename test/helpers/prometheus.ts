// A strict reader of the Prometheus text exposition format 0.0.4, for tests: HELP/TYPE before
// samples, name and label syntax, each series once, counters named `_total`, histogram buckets
// cumulative and ending in +Inf. Throws on the first violation.

export interface Sample {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

export interface Family {
  readonly name: string;
  help: string | null;
  type: string | null;
  readonly samples: Sample[];
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
const TYPES = new Set(["counter", "gauge", "histogram", "summary", "untyped"]);

/** Parses `{a="x",b="y\"z"}` strictly; returns the labels and the index after `}`. */
function parseLabels(line: string, at: number): [Record<string, string>, number] {
  const labels: Record<string, string> = {};
  let i = at + 1;
  while (line[i] !== "}") {
    const eq = line.indexOf("=", i);
    if (eq < 0) throw new Error(`no '=' in labels: ${line}`);
    const name = line.slice(i, eq);
    if (!LABEL_NAME.test(name)) throw new Error(`bad label name ${JSON.stringify(name)}: ${line}`);
    if (name in labels) throw new Error(`label ${name} twice: ${line}`);
    if (line[eq + 1] !== '"') throw new Error(`label value not quoted: ${line}`);
    let value = "";
    for (i = eq + 2; line[i] !== '"'; i++) {
      if (i >= line.length) throw new Error(`unterminated label value: ${line}`);
      if (line[i] === "\\") {
        const next = line[++i];
        if (next === "n") value += "\n";
        else if (next === "\\" || next === '"') value += next;
        else throw new Error(`bad escape \\${next}: ${line}`);
      } else value += line[i];
    }
    labels[name] = value;
    i++;
    if (line[i] === ",") i++;
    else if (line[i] !== "}") throw new Error(`expected ',' or '}' at ${i}: ${line}`);
  }
  return [labels, i + 1];
}

export function parseValue(text: string, line: string): number {
  if (text === "+Inf") return Infinity;
  if (text === "-Inf") return -Infinity;
  if (text === "NaN") return NaN;
  if (!/^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(text)) throw new Error(`bad value: ${line}`);
  return Number(text);
}

/** The base family name a sample belongs to (histogram series carry suffixes). */
const familyOf = (sample: string, families: Map<string, Family>): Family | undefined =>
  families.get(sample) ?? families.get(sample.replace(/_(bucket|sum|count)$/, ""));

export function parseExposition(text: string): Map<string, Family> {
  if (!text.endsWith("\n")) throw new Error("exposition does not end with a newline");
  const families = new Map<string, Family>();
  const seen = new Set<string>();
  let current: Family | null = null;
  for (const line of text.slice(0, -1).split("\n")) {
    const comment = /^# (HELP|TYPE) (\S+) (.*)$/.exec(line);
    if (comment !== null) {
      const [, kind, name, rest] = comment as unknown as [string, string, string, string];
      if (!NAME.test(name)) throw new Error(`bad metric name: ${line}`);
      let family = families.get(name);
      if (family === undefined) {
        family = { name, help: null, type: null, samples: [] };
        families.set(name, family);
      } else if (family !== current) throw new Error(`family ${name} is not contiguous`);
      if (family.samples.length > 0) throw new Error(`${kind} after samples: ${line}`);
      if (kind === "HELP") {
        if (family.help !== null) throw new Error(`second HELP: ${line}`);
        family.help = rest;
      } else {
        if (family.type !== null || !TYPES.has(rest)) throw new Error(`bad TYPE: ${line}`);
        family.type = rest;
      }
      current = family;
      continue;
    }
    if (line.startsWith("#") || line === "") throw new Error(`unexpected line: ${JSON.stringify(line)}`);
    const nameEnd = line.search(/[{ ]/);
    const name = line.slice(0, nameEnd);
    if (!NAME.test(name)) throw new Error(`bad sample name: ${line}`);
    let labels: Record<string, string> = {};
    let at = nameEnd;
    if (line[at] === "{") [labels, at] = parseLabels(line, at);
    if (line[at] !== " ") throw new Error(`no space before value: ${line}`);
    const value = parseValue(line.slice(at + 1), line);
    const family = familyOf(name, families);
    if (family === undefined || family !== current) throw new Error(`sample outside its family: ${line}`);
    const key = `${name}${JSON.stringify(Object.entries(labels).sort())}`;
    if (seen.has(key)) throw new Error(`series twice: ${line}`);
    seen.add(key);
    family.samples.push({ name, labels, value });
  }
  for (const f of families.values()) {
    if (f.help === null || f.type === null) throw new Error(`${f.name} lacks HELP or TYPE`);
    if (f.type === "counter" && !f.name.endsWith("_total")) throw new Error(`counter ${f.name} lacks _total`);
    if (f.type !== "counter" && f.name.endsWith("_total")) throw new Error(`${f.type} ${f.name} ends in _total`);
    if (f.type === "histogram") checkHistogram(f);
  }
  return families;
}

/** Per series: `le` ascending ending with +Inf, counts non-decreasing, +Inf equals _count. */
function checkHistogram(f: Family): void {
  const series = new Map<string, { les: number[]; counts: number[]; count?: number; sum?: number }>();
  for (const s of f.samples) {
    const { le, ...rest } = s.labels;
    const key = JSON.stringify(Object.entries(rest).sort());
    const entry = series.get(key) ?? { les: [], counts: [] };
    series.set(key, entry);
    if (s.name === `${f.name}_bucket`) {
      if (le === undefined) throw new Error(`${f.name} bucket without le`);
      entry.les.push(parseValue(le, le));
      entry.counts.push(s.value);
    } else if (s.name === `${f.name}_count`) entry.count = s.value;
    else if (s.name === `${f.name}_sum`) entry.sum = s.value;
    else throw new Error(`${s.name} in histogram ${f.name}`);
  }
  for (const [key, e] of series) {
    if (e.les.at(-1) !== Infinity) throw new Error(`${f.name}${key}: last bucket is not +Inf`);
    for (let i = 1; i < e.les.length; i++) {
      if (!(e.les[i]! > e.les[i - 1]!)) throw new Error(`${f.name}${key}: le not ascending`);
      if (e.counts[i]! < e.counts[i - 1]!) throw new Error(`${f.name}${key}: buckets not cumulative`);
    }
    if (e.count !== e.counts.at(-1) || e.sum === undefined) throw new Error(`${f.name}${key}: _count/_sum`);
  }
}

/** The value of the first sample of `family` (named `sample`) whose labels include `labels`. */
export const value = (families: Map<string, Family>, family: string, labels: Record<string, string>, sample = family) =>
  families
    .get(family)
    ?.samples.find((s) => s.name === sample && Object.entries(labels).every(([k, v]) => s.labels[k] === v))
    ?.value;

/** The value of one sample of a proxy's /metrics, named with its labels as exposed (e.g.
 *  `buncracker_pool_client_tls_failed_total{pool="mtls"}`). */
export async function metricSample(metricsPort: number, sample: string): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
  const line = text.split("\n").find((l) => l.startsWith(`${sample} `));
  if (line === undefined) throw new Error(`/metrics has no sample ${sample}`);
  return Number(line.slice(sample.length + 1));
}
