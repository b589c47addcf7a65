// Writes buncracker(8), the man page the Debian package installs, to stdout: its synopsis and
// options come from the flag table (src/cli/options.ts) that --help prints, so the two agree.
// Run by scripts/build.sh: `bun scripts/manpage.ts > buncracker.8`.

import { FLAGS } from "../src/cli/options.ts";
import { TWEMPROXY_VERSION, VERSION } from "../src/lib/version.ts";

/** roff text: backslashes and leading dots/quotes escaped, hyphens as minus signs. */
const roff = (text: string): string => text.replaceAll("\\", "\\e").replaceAll("-", "\\-").replace(/^[.']/, "\\&$&");

const options = FLAGS.map((f) => {
  const value = f.arg === null ? "" : ` \\fI${roff(f.arg)}\\fR`;
  const names = [f.short === null ? null : `\\fB\\-${f.short}\\fR${value}`, `\\fB\\-\\-${roff(f.long)}\\fR${value}`];
  return `.TP\n${names.filter((n) => n !== null).join(", ")}\n${roff(f.help)}.\n`;
}).join("");

const synopsis = FLAGS.map((f) => `[\\fB${f.short === null ? `\\-\\-${roff(f.long)}` : `\\-${f.short}`}\\fR${f.arg === null ? "" : ` \\fI${roff(f.arg)}\\fR`}]`).join("\n");

process.stdout.write(`.TH BUNCRACKER 8 "" "buncracker ${VERSION}" "System Administration"
.SH NAME
buncracker \\- twemproxy (nutcracker) compatible proxy for memcached and Redis
.SH SYNOPSIS
.B buncracker
${synopsis}
.SH DESCRIPTION
\\fBbuncracker\\fR is a drop\\-in replacement for twemproxy (nutcracker) ${TWEMPROXY_VERSION}: it reads the same
YAML configuration, takes the same flags, serves the same stats JSON on the stats port and places
keys on the same servers. It adds configuration reload on SIGUSR1, a graceful stop on SIGTERM,
worker processes (\\fB\\-\\-workers\\fR) and an HTTP port (\\fB\\-\\-metrics\\-port\\fR) with
Prometheus metrics (/metrics), a health check (/healthz), reload (POST /reload), a live dashboard
(/) and its data as JSON (/dashboard.json).
.SH OPTIONS
${options}.SH SIGNALS
.TP
.B SIGUSR1
Re\\-read the configuration file and apply it; an invalid file changes nothing.
.TP
.B SIGTERM
Stop accepting, let in\\-flight requests finish for up to the drain timeout, exit 0. A second
SIGTERM exits 1 at once.
.TP
.B SIGINT
Exit 1 at once, as nutcracker.
.TP
.B SIGHUP
Reopen the log file (\\fB\\-o\\fR).
.TP
.BR SIGTTIN ", " SIGTTOU
Raise or lower the log level by one.
.SH FILES
.TP
.I /etc/buncracker/buncracker.yml
The configuration the systemd unit runs (twemproxy's YAML).
.TP
.I /etc/default/buncracker
Extra flags for the systemd unit (DAEMON_OPTS).
.TP
.I /lib/systemd/system/buncracker.service
The systemd unit: \\fBsystemctl reload buncracker\\fR sends SIGUSR1.
.SH SEE ALSO
.BR nutcracker (8),
.BR systemctl (1)
`);
