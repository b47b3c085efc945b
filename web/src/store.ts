// The page's storage: one IndexedDB database with a key-value store (keys, pinned gateway, roster, names, sequence, outbox) and the received envelopes (ciphertext only).
import { WebError } from './errors.ts';

const DB_NAME = 'plushlink';
const DB_VERSION = 1;
const KV = 'kv';
const CLIPS = 'clips';

function request<T>(req: IDBRequest<T>, what: string): Promise<T> {
  return new Promise((resolve, reject) => {
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(new WebError('WEB_STORAGE', `${what} failed`, { cause: req.error }));
  });
}

/** A small promise wrapper around the two object stores; every value is structured-cloned (CryptoKeys stay non-extractable). */
export class PageStore {
  private constructor(private readonly db: IDBDatabase) {}

  static async open(): Promise<PageStore> {
    if (typeof indexedDB === 'undefined')
      throw new WebError(
        'WEB_UNSUPPORTED',
        'this browser has no IndexedDB (a private window may disable it)',
      );
    const req = indexedDB.open(DB_NAME, DB_VERSION);
    req.onupgradeneeded = () => {
      const db = req.result;
      if (!db.objectStoreNames.contains(KV)) db.createObjectStore(KV);
      if (!db.objectStoreNames.contains(CLIPS)) db.createObjectStore(CLIPS);
    };
    return new PageStore(await request(req, 'opening the page storage'));
  }

  private async run<T>(
    store: string,
    mode: IDBTransactionMode,
    fn: (s: IDBObjectStore) => IDBRequest<T>,
  ): Promise<T> {
    const tx = this.db.transaction(store, mode);
    const result = request(fn(tx.objectStore(store)), `${mode} ${store}`);
    const done = new Promise<void>((resolve, reject) => {
      tx.oncomplete = () => resolve();
      tx.onabort = tx.onerror = () =>
        reject(new WebError('WEB_STORAGE', `${store} transaction failed`, { cause: tx.error }));
    });
    const [value] = await Promise.all([result, done]);
    return value;
  }

  get(key: string): Promise<unknown> {
    return this.run(KV, 'readonly', (s) => s.get(key));
  }

  async put(key: string, value: unknown): Promise<void> {
    await this.run(KV, 'readwrite', (s) => s.put(value, key));
  }

  async delete(key: string): Promise<void> {
    await this.run(KV, 'readwrite', (s) => s.delete(key));
  }

  getClip(key: string): Promise<unknown> {
    return this.run(CLIPS, 'readonly', (s) => s.get(key));
  }

  async putClip(key: string, value: unknown): Promise<void> {
    await this.run(CLIPS, 'readwrite', (s) => s.put(value, key));
  }

  async deleteClip(key: string): Promise<void> {
    await this.run(CLIPS, 'readwrite', (s) => s.delete(key));
  }

  allClips(): Promise<unknown[]> {
    return this.run(CLIPS, 'readonly', (s) => s.getAll());
  }

  close(): void {
    this.db.close();
  }
}
