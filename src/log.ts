// nutcracker's log levels and a line logger. Hot paths guard with one comparison:
//   if (log.level >= LOG_INFO) log.write(LOG_INFO, `...`);
// so a disabled level costs no string building.

export const LOG_EMERG = 0;
export const LOG_ALERT = 1;
export const LOG_CRIT = 2;
export const LOG_ERR = 3;
export const LOG_WARN = 4;
export const LOG_NOTICE = 5;
export const LOG_INFO = 6;
export const LOG_DEBUG = 7;
export const LOG_VERB = 8;
export const LOG_VVERB = 9;
export const LOG_VVVERB = 10;
export const LOG_PVERB = 11;
export const LOG_MAX = LOG_PVERB;

class Logger {
  level = LOG_NOTICE;

  write(level: number, msg: string): void {
    if (level > this.level) return;
    process.stderr.write(`[${new Date().toISOString()}] ${msg}\n`);
  }

  error(msg: string): void {
    this.write(LOG_ERR, msg);
  }

  warn(msg: string): void {
    this.write(LOG_WARN, msg);
  }

  notice(msg: string): void {
    this.write(LOG_NOTICE, msg);
  }

  info(msg: string): void {
    this.write(LOG_INFO, msg);
  }
}

export const log = new Logger();
