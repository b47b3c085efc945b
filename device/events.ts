// Typed event emitter for the simulators: a throwing listener is reported as a process warning, never to the code that emitted.

type Listener<T> = (event: T) => void;

/** Minimal typed event emitter: `on` returns the function that removes the listener. */
export class TypedEmitter<E extends object> {
  private readonly listeners = new Map<keyof E, Set<Listener<never>>>();
  on<K extends keyof E>(kind: K, fn: Listener<E[K]>): () => void {
    let set = this.listeners.get(kind);
    if (!set) {
      set = new Set();
      this.listeners.set(kind, set);
    }
    set.add(fn as Listener<never>);
    return () => set.delete(fn as Listener<never>);
  }
  protected emit<K extends keyof E>(kind: K, event: E[K]): void {
    const set = this.listeners.get(kind);
    if (!set) return;
    for (const fn of set) {
      try {
        (fn as Listener<E[K]>)(event);
      } catch (err) {
        process.emitWarning(
          `listener for ${String(kind)} threw: ${err instanceof Error ? err.message : String(err)}`,
        );
      }
    }
  }
}
