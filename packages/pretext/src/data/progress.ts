// Progress bar for long loops: `label [#####.....] n/total rate/s ETA 0:12`.
// On a TTY the bar is redrawn in place (throttled); otherwise plain lines are printed now and then.

/** The part of a writable stream the bar needs (process.stderr by default). */
export interface ProgressStream {
  write(text: string): unknown;
  isTTY?: boolean;
  columns?: number;
}

export interface ProgressOptions {
  stream?: ProgressStream;
  /** Minimum time between redraws on a TTY. */
  redrawMs?: number;
  /** Minimum time between plain lines when the stream is not a TTY. */
  lineMs?: number;
  /** Width of the bar in characters. */
  barWidth?: number;
  /** Clock in ms, for tests. */
  now?: () => number;
  /** Items already done when the bar starts (a resumed epoch): shown, but not counted in the rate. */
  startAt?: number;
}

/** Formats seconds as m:ss or h:mm:ss. */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds)) return '?';
  const total = Math.max(0, Math.round(seconds));
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = String(total % 60).padStart(2, '0');
  return h > 0 ? `${h}:${String(m).padStart(2, '0')}:${s}` : `${m}:${s}`;
}

function formatRate(perSecond: number): string {
  if (!Number.isFinite(perSecond)) return '?';
  return perSecond >= 100 ? perSecond.toFixed(0) : perSecond.toFixed(1);
}

export class Progress {
  private readonly stream: ProgressStream;
  private readonly tty: boolean;
  private readonly redrawMs: number;
  private readonly lineMs: number;
  private readonly barWidth: number;
  private readonly now: () => number;
  private readonly startedAt: number;
  private done: number;
  private readonly startAt: number;
  private lastDrawAt = -Infinity;
  private barVisible = false;
  private finished = false;
  private status = '';

  constructor(
    private readonly label: string,
    private readonly total: number,
    options: ProgressOptions = {},
  ) {
    this.stream = options.stream ?? process.stderr;
    this.tty = this.stream.isTTY === true;
    this.redrawMs = options.redrawMs ?? 100;
    this.lineMs = options.lineMs ?? 10_000;
    this.barWidth = options.barWidth ?? 30;
    this.now = options.now ?? (() => performance.now());
    this.startedAt = this.now();
    this.done = this.startAt = options.startAt ?? 0;
  }

  /** Advances by `count` items. */
  tick(count = 1): void {
    this.update(this.done + count);
  }

  /** Sets the number of finished items. */
  update(done: number): void {
    this.done = done;
    const now = this.now();
    if (now - this.lastDrawAt >= (this.tty ? this.redrawMs : this.lineMs)) this.draw(now);
  }

  /** Text shown after the counts (loss, accuracy...), drawn with the next update. */
  setStatus(text: string): void {
    this.status = text;
  }

  /** Prints a line (a warning, say) without garbling the bar. */
  log(line: string): void {
    if (this.barVisible) this.stream.write('\r\x1b[K');
    this.stream.write(line + '\n');
    this.barVisible = false;
    if (this.tty && !this.finished) this.draw(this.now());
  }

  /** Draws the final state and ends the bar's line. */
  finish(): void {
    if (this.finished) return;
    this.draw(this.now());
    if (this.tty) this.stream.write('\n');
    this.barVisible = false;
    this.finished = true;
  }

  /** The current status line, without control characters. */
  render(now = this.now()): string {
    const elapsed = (now - this.startedAt) / 1000;
    const rate = elapsed > 0 ? (this.done - this.startAt) / elapsed : NaN;
    const eta = this.done >= this.total ? `in ${formatDuration(elapsed)}` : `ETA ${formatDuration((this.total - this.done) / rate)}`;
    const fraction = this.total > 0 ? Math.min(1, this.done / this.total) : 1;
    const filled = Math.round(fraction * this.barWidth);
    const bar = '#'.repeat(filled) + '.'.repeat(this.barWidth - filled);
    return `${this.label} [${bar}] ${this.done}/${this.total} ${formatRate(rate)}/s ${eta}${this.status ? `  ${this.status}` : ''}`;
  }

  private draw(now: number): void {
    this.lastDrawAt = now;
    const line = this.render(now);
    if (this.tty) {
      const width = this.stream.columns ?? 0;
      this.stream.write('\r' + (width > 1 ? line.slice(0, width - 1) : line) + '\x1b[K');
      this.barVisible = true;
    } else {
      this.stream.write(line + '\n');
    }
  }
}
