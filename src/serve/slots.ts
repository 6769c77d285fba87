// Bounded concurrency: `slots` requests decode at once, at most `queue` more wait for a slot,
// and beyond that a request is refused at once (the server answers 429 with Retry-After). A
// waiting request whose client goes away leaves the queue.

export class QueueFullError extends Error {
  override name = "QueueFullError";
}

export class Slots {
  private busy = 0;
  private readonly waiting: { grant: () => void; fail: (e: unknown) => void }[] = [];

  constructor(
    readonly total: number,
    readonly maxQueue: number,
  ) {}

  get state() {
    return { busy: this.busy, total: this.total, waiting: this.waiting.length, max: this.maxQueue };
  }

  /**
   * Resolves to a release function once a slot is free; throws QueueFullError when the queue is
   * full, or the signal's reason when it fires while waiting.
   */
  async acquire(signal?: AbortSignal): Promise<() => void> {
    signal?.throwIfAborted();
    if (this.busy < this.total) {
      this.busy++;
      return this.releaser();
    }
    if (this.waiting.length >= this.maxQueue) {
      throw new QueueFullError(`${this.total} requests decoding and ${this.maxQueue} waiting`);
    }
    await new Promise<void>((resolve, reject) => {
      const entry = {
        grant: () => {
          signal?.removeEventListener("abort", onAbort);
          resolve();
        },
        fail: reject,
      };
      const onAbort = () => {
        const i = this.waiting.indexOf(entry);
        if (i >= 0) this.waiting.splice(i, 1);
        reject(signal?.reason);
      };
      signal?.addEventListener("abort", onAbort, { once: true });
      this.waiting.push(entry);
    });
    return this.releaser();
  }

  private releaser(): () => void {
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const next = this.waiting.shift();
      if (next !== undefined)
        next.grant(); // the slot passes on
      else this.busy--;
    };
  }

  /** Fails every waiting request (shutdown). */
  drain(error: unknown): void {
    for (const w of this.waiting.splice(0)) w.fail(error);
  }
}
