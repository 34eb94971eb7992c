import type { LiveCall } from "./pool.js";

/**
 * A FIFO of calls with O(1) push and shift (an array and a moving head, compacted now and then),
 * so a queue of 100,000 calls drains in linear time. Removal by ID (cancel) is linear.
 */
export class CallQueue {
  private items: LiveCall[] = [];
  private head = 0;

  get length(): number {
    return this.items.length - this.head;
  }

  push(call: LiveCall): void {
    this.items.push(call);
  }

  /** Puts calls back at the front, in the order given (the first is next out). */
  unshift(calls: readonly LiveCall[]): void {
    if (!calls.length) return;
    this.items = [...calls, ...this.items.slice(this.head)];
    this.head = 0;
  }

  shift(): LiveCall | undefined {
    if (this.head >= this.items.length) return undefined;
    const call = this.items[this.head]!;
    this.items[this.head++] = undefined as unknown as LiveCall;
    if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    return call;
  }

  remove(callId: string): boolean {
    for (let i = this.head; i < this.items.length; i++) {
      if (this.items[i]!.id === callId) {
        this.items.splice(i, 1);
        return true;
      }
    }
    return false;
  }

  /** Empties the queue, returning what it held in order. */
  drain(): LiveCall[] {
    const out = this.items.slice(this.head);
    this.items = [];
    this.head = 0;
    return out;
  }

  *[Symbol.iterator](): IterableIterator<LiveCall> {
    for (let i = this.head; i < this.items.length; i++) yield this.items[i]!;
  }
}
