// `npm run bench`: every microbenchmark of bench/micro/ (mitata), one file after another, each
// in its own process so that one file's JIT state does not colour the next one's figures.
import { readdirSync } from "node:fs";
import { join } from "node:path";

const dir = import.meta.dir;
const only = process.argv[2];
const files = readdirSync(dir)
  .filter((f) => f.endsWith(".bench.ts") && (only === undefined || f.includes(only)))
  .sort();
let failed = 0;
for (const file of files) {
  console.log(`\n## ${file}\n`);
  const proc = Bun.spawnSync([process.execPath, join(dir, file)], { stdio: ["ignore", "inherit", "inherit"] });
  if (proc.exitCode !== 0) failed++;
}
process.exit(failed === 0 ? 0 : 1);
