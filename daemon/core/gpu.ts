/**
 * GPU requests, type matching and allocation. Pure: the caller passes the machine's inventory and
 * which GPUs are held, and carries out the answer.
 *
 * - A request is `"any"`, a type (`"A100"`, `"A100-80GB"`, `"L4"`), optionally with a count
 *   (`"H100:2"`); a function may list fallbacks, tried in order: the first that fits now wins.
 * - A type matches a GPU when each of its words is a whole word of the GPU's name, compared
 *   case-insensitively ("A100" matches "NVIDIA A100-SXM4-80GB"; "L4" does not match "NVIDIA L40S").
 *   A memory word ("80GB") matches the name's, or the GPU's memory within 10 % when the name has none.
 * - Each container gets whole GPUs of one model (and, in a cluster, of one node). Among the ways to place a request, a set of
 *   adjacent indices beats a scattered one, the smallest free run that fits beats a larger one
 *   (best fit keeps big runs for big requests), and smaller GPUs beat bigger ones for `"any"`.
 */

export interface Gpu {
  index: number;
  uuid: string;
  name: string;
  memoryMiB: number;
  /** PCI bus id as nvidia-smi prints it, when known. */
  busId: string | null;
  /** The N of /dev/nvidiaN: from the driver's record, else the index. */
  minor: number;
  /** The cluster node it is on (Swarm); absent on one machine. A container's GPUs share one node. */
  node?: string;
}

export interface GpuRequest {
  /** "any", or a GPU type as written ("A100-80GB"). */
  type: string;
  count: number;
}

const REQUEST = /^(any|[A-Za-z0-9][A-Za-z0-9-]*)(?::([1-9][0-9]*))?$/;
export const MAX_GPUS_PER_CONTAINER = 8;

/** Parses `"H100:2"`; throws a message naming the value when it is not a request. */
export function parseGpuRequest(raw: string): GpuRequest {
  const m = REQUEST.exec(raw.trim());
  const count = m?.[2] === undefined ? 1 : Number(m[2]);
  if (!m || count > MAX_GPUS_PER_CONTAINER) {
    throw new Error(`gpu ${JSON.stringify(raw)} is not a GPU request: use "any", a type like "A100" or "H100:2" (1 to ${MAX_GPUS_PER_CONTAINER} GPUs)`);
  }
  return { type: m[1]!.toLowerCase() === "any" ? "any" : m[1]!, count };
}

export const formatGpuRequest = (r: GpuRequest) => (r.count === 1 ? r.type : `${r.type}:${r.count}`);

const words = (s: string) => s.toUpperCase().split(/[^A-Z0-9]+/).filter(Boolean);
const MEMORY_WORD = /^(\d+)GB$/;

/** Whether a GPU is of the requested type ("any" matches every GPU). */
export function gpuMatches(gpu: Pick<Gpu, "name" | "memoryMiB">, type: string): boolean {
  if (type.toLowerCase() === "any") return true;
  const have = new Set(words(gpu.name));
  const nameHasMemory = [...have].some((w) => MEMORY_WORD.test(w));
  return words(type).every((w) => {
    if (have.has(w)) return true;
    const mem = MEMORY_WORD.exec(w);
    if (!mem || nameHasMemory) return false;
    const gib = gpu.memoryMiB / 1024;
    return Math.abs(gib - Number(mem[1])) <= Number(mem[1]) * 0.1;
  });
}

export type Allocation =
  | { ok: true; gpus: Gpu[]; request: GpuRequest }
  /** ever: false when no alternative fits even with every GPU free. */
  | { ok: false; ever: boolean; reason: string };

interface Placement {
  gpus: Gpu[];
  /** Rank: adjacent before scattered, then the smallest run that fits, smaller GPUs, lower index. */
  rank: [number, number, number, number];
}

/** GPUs of one model on one node, in index order. */
function byModel(gpus: readonly Gpu[]): Gpu[][] {
  const groups = new Map<string, Gpu[]>();
  for (const g of [...gpus].sort((a, b) => a.index - b.index)) {
    const key = `${g.node ?? ""}\0${g.name}\0${g.memoryMiB}`;
    groups.set(key, [...(groups.get(key) ?? []), g]);
  }
  return [...groups.values()];
}

/** Maximal runs of consecutive indices. */
function runs(gpus: readonly Gpu[]): Gpu[][] {
  const out: Gpu[][] = [];
  for (const g of gpus) {
    const last = out.at(-1);
    if (last && last.at(-1)!.index === g.index - 1) last.push(g);
    else out.push([g]);
  }
  return out;
}

function bestPlacement(free: readonly Gpu[], req: GpuRequest): Placement | null {
  let best: Placement | null = null;
  const consider = (p: Placement) => {
    if (!best || firstDiff(p.rank, best.rank) < 0) best = p;
  };
  for (const model of byModel(free.filter((g) => gpuMatches(g, req.type)))) {
    if (model.length < req.count) continue;
    let fitted = false;
    for (const run of runs(model)) {
      if (run.length < req.count) continue;
      fitted = true;
      consider({ gpus: run.slice(0, req.count), rank: [0, run.length, run[0]!.memoryMiB, run[0]!.index] });
    }
    if (!fitted) consider({ gpus: model.slice(0, req.count), rank: [1, model.length, model[0]!.memoryMiB, model[0]!.index] });
  }
  return best;
}

function firstDiff(a: readonly number[], b: readonly number[]): number {
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return a[i]! - b[i]!;
  return 0;
}

/** Whether some alternative could ever be met by this inventory (every GPU free). */
export function everSatisfiable(inventory: readonly Gpu[], requests: readonly GpuRequest[]): boolean {
  return requests.some((r) => bestPlacement(inventory, r) !== null);
}

/**
 * Chooses GPUs for one container: the first alternative that fits in the free GPUs now.
 * `held` holds the UUIDs other containers have.
 */
export function allocateGpus(inventory: readonly Gpu[], held: ReadonlySet<string>, requests: readonly GpuRequest[]): Allocation {
  const free = inventory.filter((g) => !held.has(g.uuid));
  for (const request of requests) {
    const p = bestPlacement(free, request);
    if (p) return { ok: true, gpus: p.gpus, request };
  }
  const ever = everSatisfiable(inventory, requests);
  const asked = requests.map(formatGpuRequest).join(" or ");
  return {
    ok: false,
    ever,
    reason: ever
      ? `no free GPU for ${asked}: ${held.size} of ${inventory.length} GPUs are held`
      : `no GPU of this machine can meet ${asked}; it has ${describeInventory(inventory)}`,
  };
}

/** "2 GPUs: #0 NVIDIA A100-SXM4-80GB (80 GiB), #1 …" or "no NVIDIA GPUs". */
export function describeInventory(inventory: readonly Gpu[]): string {
  if (inventory.length === 0) return "no NVIDIA GPUs";
  const list = inventory.map((g) => `#${g.index} ${g.name} (${Math.round(g.memoryMiB / 1024)} GiB)`).join(", ");
  return `${inventory.length} GPU${inventory.length === 1 ? "" : "s"}: ${list}`;
}

/** A container holding GPUs, as a candidate to give them up for a waiting call. */
export interface GpuHolder {
  containerId: string;
  uuids: readonly string[];
  /** Idle since (ms), or null while it runs calls or is starting. */
  idleSinceMs: number | null;
  /** Already stopping: its GPUs come back soon. */
  releasing: boolean;
  /** May be stopped for another function (false for those that keep minContainers warm). */
  donatable: boolean;
}

/**
 * Which idle containers to stop so that a waiting request fits: longest idle first, and no
 * container whose GPUs are not needed. [] when the GPUs of containers already stopping will do;
 * null when stopping idle containers cannot make it fit.
 */
export function pickDonors(inventory: readonly Gpu[], holders: readonly GpuHolder[], requests: readonly GpuRequest[]): string[] | null {
  const heldBy = (hs: readonly GpuHolder[]) => new Set(hs.flatMap((h) => h.uuids));
  const staying = holders.filter((h) => !h.releasing);
  if (allocateGpus(inventory, heldBy(staying), requests).ok) return [];
  const useful = new Set(inventory.filter((g) => requests.some((r) => gpuMatches(g, r.type))).map((g) => g.uuid));
  const candidates = staying
    .filter((h) => h.donatable && h.idleSinceMs !== null && h.uuids.some((u) => useful.has(u)))
    .sort((a, b) => a.idleSinceMs! - b.idleSinceMs! || a.containerId.localeCompare(b.containerId));
  const chosen: GpuHolder[] = [];
  const fits = (donors: readonly GpuHolder[]) => allocateGpus(inventory, heldBy(staying.filter((h) => !donors.includes(h))), requests).ok;
  for (const c of candidates) {
    chosen.push(c);
    if (fits(chosen)) {
      // Keep only the donors the fit needs, preferring to spare the most recently used.
      for (let i = chosen.length - 2; i >= 0; i--) {
        const without = chosen.filter((_, j) => j !== i);
        if (fits(without)) chosen.splice(i, 1);
      }
      return chosen.map((h) => h.containerId);
    }
  }
  return null;
}
