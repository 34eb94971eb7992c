/**
 * Secrets on disk: one file per secret, `$GANTRY_HOME/secrets/<name>.json`, mode 0600 in a folder
 * of mode 0700, written whole to a temporary file, flushed and renamed into place. They stay out
 * of the SQLite file (and its backups). All are read once at start and kept in memory, so that a
 * container launch reads its secrets without waiting on the disk.
 */
import { closeSync, fsyncSync, openSync } from "node:fs";
import { chmod, mkdir, open, readdir, readFile, rename, rm } from "node:fs/promises";
import { join } from "node:path";
import { secretNameSchema } from "../../protocol/secrets.js";
import type { Logger } from "../logger.js";

export interface StoredSecret {
  name: string;
  values: Record<string, string>;
  createdAt: number;
  updatedAt: number;
}

interface SecretFile {
  name: string;
  values: Record<string, string>;
  created_at: number;
  updated_at: number;
}

const SUFFIX = ".json";
const TMP_SUFFIX = ".tmp";

export class SecretStore {
  private readonly secrets = new Map<string, StoredSecret>();

  private constructor(readonly dir: string) {}

  /** Opens the folder (created 0700 when missing), reads every secret, removes half-written files. */
  static async open(dir: string, log: Logger): Promise<SecretStore> {
    await mkdir(dir, { recursive: true, mode: 0o700 });
    await chmod(dir, 0o700);
    const store = new SecretStore(dir);
    for (const entry of await readdir(dir)) {
      const path = join(dir, entry);
      if (entry.endsWith(TMP_SUFFIX)) {
        await rm(path, { force: true });
        continue;
      }
      if (!entry.endsWith(SUFFIX)) continue;
      const name = entry.slice(0, -SUFFIX.length);
      try {
        const file = JSON.parse(await readFile(path, "utf8")) as SecretFile;
        if (file.name !== name || typeof file.values !== "object" || file.values === null) throw new Error("not a secret file");
        await chmod(path, 0o600);
        store.secrets.set(name, { name, values: file.values, createdAt: file.created_at, updatedAt: file.updated_at });
      } catch (err) {
        // The message says why, never what the file holds.
        const why = err instanceof SyntaxError ? "it is not valid JSON" : (err as Error).message;
        log.warn("secret file skipped", { file: path, why });
      }
    }
    return store;
  }

  get(name: string): StoredSecret | undefined {
    return this.secrets.get(name);
  }

  list(): StoredSecret[] {
    return [...this.secrets.values()].sort((a, b) => a.name.localeCompare(b.name));
  }

  /** Writes the secret (durable when this resolves), then makes it the one launches read. */
  async put(secret: StoredSecret): Promise<void> {
    const path = this.pathOf(secret.name);
    const tmp = `${path}.${process.pid}${TMP_SUFFIX}`;
    const file: SecretFile = { name: secret.name, values: secret.values, created_at: secret.createdAt, updated_at: secret.updatedAt };
    const fh = await open(tmp, "w", 0o600);
    try {
      await fh.chmod(0o600);
      await fh.writeFile(JSON.stringify(file));
      await fh.sync();
    } finally {
      await fh.close();
    }
    try {
      await rename(tmp, path);
    } catch (err) {
      await rm(tmp, { force: true });
      throw err;
    }
    this.syncDir();
    this.secrets.set(secret.name, secret);
  }

  /**
   * Forgets the secret at once (launches from now on do not find it), then removes its file;
   * false when there was none. A file that cannot be removed brings the secret back.
   */
  async remove(name: string): Promise<boolean> {
    const secret = this.secrets.get(name);
    if (!secret) return false;
    this.secrets.delete(name);
    try {
      await rm(this.pathOf(name));
    } catch (err) {
      this.secrets.set(name, secret);
      throw err;
    }
    this.syncDir();
    return true;
  }

  private pathOf(name: string): string {
    // Names are checked where requests come in; checked again here, as they become file names.
    if (!secretNameSchema.safeParse(name).success) throw new Error(`${JSON.stringify(name.slice(0, 80))} is not a secret name`);
    return join(this.dir, name + SUFFIX);
  }

  /** Makes a rename or removal in the folder durable. */
  private syncDir(): void {
    const fd = openSync(this.dir, "r");
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  }
}
