/**
 * What the host's NVIDIA driver offers: the GPUs (`nvidia-smi --query-gpu`), each GPU's device
 * node (`/proc/driver/nvidia/gpus/<bus id>/information`), the control nodes, and the driver's
 * user-space libraries (`ldconfig -p`) that a container without NVIDIA's toolkit needs mounted.
 */
import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { readFile, realpath } from "node:fs/promises";
import { delimiter, join } from "node:path";
import type { Gpu } from "../core/gpu.js";

export interface HostGpus {
  gpus: Gpu[];
  /** Why the machine shows no GPUs (nvidia-smi missing or failing); null when it was read. */
  problem: string | null;
  driverVersion: string | null;
  /** The nodes every GPU container needs besides its GPUs' own: /dev/nvidiactl, /dev/nvidia-uvm… */
  controlNodes: string[];
  /** The driver's libraries (real paths), by the name programs load them with. */
  libraries: Array<{ name: string; path: string }>;
  /** The real path of nvidia-smi, mounted into containers that get no toolkit. */
  smiPath: string | null;
  /** Where the device nodes are: a GPU's is `<devDir>/nvidia<minor>`. */
  devDir: string;
  /** In a cluster, the nodes the GPUs are on (Gpu.node is an id here). */
  nodes?: Array<{ id: string; hostname: string }>;
}

export interface NvidiaHostOptions {
  /** nvidia-smi: a name looked up on PATH, or a path. */
  smi: string;
  /** Where the driver keeps one folder per GPU, named by PCI bus id. */
  procDir?: string;
  devDir?: string;
  ldconfig?: string;
}

const QUERY = "index,uuid,name,memory.total,pci.bus_id,driver_version";
const CONTROL_NODES = ["nvidiactl", "nvidia-uvm", "nvidia-uvm-tools"];
/** The driver's compute and management libraries (what NVIDIA's toolkit mounts for "compute,utility"). */
const LIBRARIES = [
  /^libcuda\.so\.1$/,
  /^libcudadebugger\.so\.1$/,
  /^libnvidia-ml\.so\.1$/,
  /^libnvidia-ptxjitcompiler\.so\.1$/,
  /^libnvidia-nvvm\.so\.4$/,
  /^libnvidia-gpucomp\.so\.[0-9.]+$/,
  /^libnvidia-cfg\.so\.1$/,
  /^libnvidia-opencl\.so\.1$/,
];

function run(cmd: string, args: string[], timeoutMs = 30_000): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { timeout: timeoutMs, maxBuffer: 4 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (err) reject(Object.assign(err, { stderr: String(stderr) }));
      else resolve(String(stdout));
    });
  });
}

/** Parses `--query-gpu=index,uuid,name,memory.total,pci.bus_id,driver_version --format=csv,noheader,nounits`. */
export function parseGpuQuery(csv: string): Array<Omit<Gpu, "minor"> & { driverVersion: string }> {
  return csv
    .split("\n")
    .map((l) => l.trim())
    .filter(Boolean)
    .map((line) => {
      const f = line.split(",").map((s) => s.trim());
      const [index, uuid, name, memory, busId, driverVersion] = f;
      if (f.length < 6 || !/^\d+$/.test(index!) || !uuid || !name || !/^\d+/.test(memory!)) {
        throw new Error(`nvidia-smi printed a line gantry cannot read: ${JSON.stringify(line.slice(0, 200))}`);
      }
      return {
        index: Number(index),
        uuid: uuid!,
        name: name!,
        memoryMiB: parseInt(memory!, 10),
        busId: busId && busId !== "[N/A]" ? busId : null,
        driverVersion: driverVersion!,
      };
    });
}

/** One GPU's utilization (percent) and memory in use (MiB); null where nvidia-smi says "[N/A]" or "[Not Supported]". */
export interface GpuUsage {
  index: number;
  utilization_pct: number | null;
  memory_used_mib: number | null;
}

export const USAGE_QUERY = "index,utilization.gpu,memory.used";

/** Parses `--query-gpu=index,utilization.gpu,memory.used --format=csv,noheader,nounits`; a line it cannot read is left out. */
export function parseGpuUsage(csv: string): GpuUsage[] {
  const num = (s: string | undefined) => (s !== undefined && /^\d+(\.\d+)?$/.test(s) ? Number(s) : null);
  const out: GpuUsage[] = [];
  for (const line of csv.split("\n")) {
    const f = line.split(",").map((s) => s.trim());
    if (f.length < 3 || !/^\d+$/.test(f[0]!)) continue;
    out.push({ index: Number(f[0]), utilization_pct: num(f[1]), memory_used_mib: num(f[2]) });
  }
  return out;
}

/** Asks nvidia-smi (a name on PATH or a path) how busy each GPU is now; rejects when it fails. */
export async function readGpuUsage(smi: string): Promise<GpuUsage[]> {
  return parseGpuUsage(await run(smi, [`--query-gpu=${USAGE_QUERY}`, "--format=csv,noheader,nounits"], 10_000));
}

/** The "Device Minor" line of a GPU's /proc/driver/nvidia/gpus/<bus id>/information. */
export function parseDeviceMinor(information: string): number | null {
  const m = /^Device Minor:\s*(\d+)\s*$/m.exec(information);
  return m ? Number(m[1]) : null;
}

/** nvidia-smi's "00000000:18:00.0" names the folder the driver calls "0000:18:00.0". */
export function procBusId(busId: string): string {
  const [domain, ...rest] = busId.toLowerCase().split(":");
  return [domain!.slice(-4).padStart(4, "0"), ...rest].join(":");
}

/** The driver libraries among `ldconfig -p`'s lines, 64-bit entries only, first entry of each name. */
export function parseLdconfig(text: string): Array<{ name: string; path: string }> {
  const found = new Map<string, string>();
  for (const line of text.split("\n")) {
    const m = /^\s*(\S+)\s+\(([^)]*)\)\s+=>\s+(\S+)\s*$/.exec(line);
    if (!m || !m[2]!.includes(",")) continue; // "(libc6)" alone is a 32-bit library
    if (LIBRARIES.some((re) => re.test(m[1]!)) && !found.has(m[1]!)) found.set(m[1]!, m[3]!);
  }
  return [...found].map(([name, path]) => ({ name, path }));
}

function which(cmd: string): string | null {
  if (cmd.includes("/")) return existsSync(cmd) ? cmd : null;
  for (const dir of (process.env.PATH ?? "").split(delimiter)) {
    const p = join(dir || ".", cmd);
    if (existsSync(p)) return p;
  }
  return null;
}

export class NvidiaHost {
  private readonly procDir: string;
  private readonly devDir: string;

  constructor(private readonly o: NvidiaHostOptions) {
    this.procDir = o.procDir ?? "/proc/driver/nvidia/gpus";
    this.devDir = o.devDir ?? "/dev";
  }

  async read(): Promise<HostGpus> {
    const none = (problem: string): HostGpus => ({ gpus: [], problem, driverVersion: null, controlNodes: [], libraries: [], smiPath: null, devDir: this.devDir });
    const smi = which(this.o.smi);
    if (!smi) {
      return none(this.o.smi.includes("/") ? `${this.o.smi} does not exist` : `${this.o.smi} is not on PATH; is the NVIDIA driver installed?`);
    }
    let rows: ReturnType<typeof parseGpuQuery>;
    try {
      rows = parseGpuQuery(await run(smi, [`--query-gpu=${QUERY}`, "--format=csv,noheader,nounits"]));
    } catch (err) {
      const e = err as Error & { stderr?: string };
      const detail = (e.stderr || e.message).trim().split("\n")[0];
      return none(`${smi} failed: ${detail}`);
    }
    const gpus: Gpu[] = await Promise.all(
      rows.map(async ({ driverVersion: _, ...g }) => {
        const info = g.busId ? await readFile(join(this.procDir, procBusId(g.busId), "information"), "utf8").catch(() => "") : "";
        return { ...g, minor: parseDeviceMinor(info) ?? g.index };
      }),
    );
    const ldconfig = await run(this.o.ldconfig ?? "ldconfig", ["-p"]).catch(() => "");
    const libraries = await Promise.all(
      parseLdconfig(ldconfig).map(async (l) => ({ name: l.name, path: await realpath(l.path).catch(() => l.path) })),
    );
    return {
      gpus,
      problem: gpus.length ? null : `${smi} lists no GPUs`,
      driverVersion: rows[0]?.driverVersion ?? null,
      controlNodes: CONTROL_NODES.map((n) => join(this.devDir, n)).filter((p) => existsSync(p)),
      libraries,
      smiPath: await realpath(smi).catch(() => smi),
      devDir: this.devDir,
    };
  }
}
