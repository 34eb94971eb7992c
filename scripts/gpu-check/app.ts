// The GPU function scripts/gpu-check.sh deploys on a real NVIDIA machine: it reports what its
// container sees of GPUs (devices, nvidia-smi) and runs a CUDA program when the image has one.
import { execFileSync } from "node:child_process";
import { existsSync, readdirSync } from "node:fs";
import { App } from "gantry";

const app = new App("gpu-check");
const CUDA_PROGRAM = "/usr/local/bin/gantry-saxpy";

function run(cmd: string, args: string[]): string {
  try {
    return execFileSync(cmd, args, { encoding: "utf8", timeout: 60_000, stdio: ["ignore", "pipe", "pipe"] }).trim();
  } catch (err) {
    const e = err as Error & { stdout?: string; stderr?: string };
    return `failed: ${[e.message, e.stdout, e.stderr].filter(Boolean).join(" | ").trim()}`;
  }
}

function seen() {
  return {
    uid: process.getuid?.(),
    nvidia_visible_devices: process.env.NVIDIA_VISIBLE_DEVICES,
    devices: readdirSync("/dev").filter((n) => n.startsWith("nvidia")).sort(),
    nvidia_smi: run("nvidia-smi", ["-L"]),
  };
}

export const gpu_info = app.function({ gpu: "any", timeout: 120, scaledownWindow: 2 }, async function gpu_info() {
  return { ...seen(), cuda: existsSync(CUDA_PROGRAM) ? run(CUDA_PROGRAM, []) : "no CUDA program in this image" };
});

export const cpu_info = app.function({ timeout: 60, scaledownWindow: 2 }, async function cpu_info() {
  return { ...seen(), cuda: existsSync(CUDA_PROGRAM) ? run(CUDA_PROGRAM, []) : "no CUDA program in this image" };
});

export default app;
