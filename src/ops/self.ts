// How this program runs itself again (the daemon, the supervisor's workers): from source it is
// the runtime plus its flags plus the entry script; the single executable (`npm run build`,
// bun build --compile) is its own entry, and an extra script argument would be read as a flag.

/** Where `bun build --compile` puts the bundled entry: a path inside the executable. */
const EMBEDDED_ROOT = "/$bunfs/";

/** True in the single executable, false when run as `bun src/main.ts`. */
export function isSingleExecutable(): boolean {
  return Bun.main.startsWith(EMBEDDED_ROOT);
}

/** The command line that starts this program again; append the flags. */
export function selfCommand(): string[] {
  return isSingleExecutable() ? [process.execPath] : [process.execPath, ...process.execArgv, Bun.main];
}
