// The strerror-like text of a failed system call, as nutcracker prints it after a path:
// Node's "ENOENT: no such file or directory, open '/x'" becomes "No such file or directory".

export function systemErrorText(err: unknown): string {
  const message = err instanceof Error ? err.message : String(err);
  const m = /^E[A-Z0-9]+: (.+?), \w+ '.*'$/s.exec(message);
  if (m === null) return message;
  return m[1]!.charAt(0).toUpperCase() + m[1]!.slice(1);
}
