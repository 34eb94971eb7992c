/**
 * Where containers run (DESIGN: beyond one machine): this machine's Docker engine, or a Swarm
 * cluster managed from it. The rest of the daemon sees only what this returns: the container
 * runtime, where GPUs come from, and how agents reach the daemon.
 */
import type http from "node:http";
import Docker from "dockerode";
import { socketAgentEndpoints, TcpAgentHub } from "./api/agent-hub.js";
import { DEFAULT_AGENT_PORT, type DaemonConfig } from "./config.js";
import { DockerRuntime } from "./docker/docker-runtime.js";
import { SwarmRuntime } from "./docker/swarm-runtime.js";
import type { ContainerRuntime } from "./docker/types.js";
import { DockerSandboxEngine, type SandboxEngine } from "./docker/sandbox-engine.js";
import { NvidiaHost, type HostGpus } from "./host/nvidia.js";
import { SwarmGpus } from "./host/swarm-gpus.js";
import type { Logger } from "./logger.js";
import type { AgentEndpointFactory } from "./service/ports.js";

export interface Backend {
  kind: "docker" | "swarm";
  runtime: ContainerRuntime;
  /** Runs sandboxes (issue 24); null where they cannot run, `sandboxesUnsupported` saying why. */
  sandboxEngine: SandboxEngine | null;
  sandboxesUnsupported?: string;
  /** Where the GPU broker reads GPUs from. */
  gpuHost: { read(): Promise<HostGpus> };
  /** Opens each container's agent endpoint; `api` serves code in containers calling functions. */
  agents(api: http.RequestListener): AgentEndpointFactory;
  /** Starts what agents dial (a cluster's TCP listener), before any container starts. */
  listen(): Promise<void>;
  close(): Promise<void>;
  /** For health and `daemon status`. */
  describe(): Record<string, unknown>;
}

export async function makeBackend(cfg: DaemonConfig, log: Logger, runtime?: ContainerRuntime): Promise<Backend> {
  const local = new DockerRuntime({ socketPath: cfg.dockerSocket, log });
  if (cfg.backend === "docker") {
    const rt = runtime ?? local;
    return {
      kind: "docker",
      runtime: rt,
      sandboxEngine: runtime ? null : new DockerSandboxEngine(new Docker({ socketPath: cfg.dockerSocket })),
      sandboxesUnsupported: "this daemon runs with a test's own container runtime, which cannot run sandboxes",
      gpuHost: new NvidiaHost({ smi: cfg.nvidiaSmi }),
      agents: (api) => socketAgentEndpoints(log, api),
      listen: async () => undefined,
      close: async () => rt.close(),
      describe: () => ({ backend: "docker" }),
    };
  }
  const swarm = runtime ?? new SwarmRuntime(local, { socketPath: cfg.dockerSocket, registry: cfg.registry, network: cfg.swarmNetwork, log });
  const advertise = cfg.advertiseAddr ?? { host: await swarmNodeAddr(cfg.dockerSocket), port: DEFAULT_AGENT_PORT };
  let api: http.RequestListener | null = null;
  const hub = new TcpAgentHub({ advertise, log, pingMs: cfg.agentPingMs, api: (req, res) => (api ? api(req, res) : res.writeHead(503).end()) });
  return {
    kind: "swarm",
    runtime: swarm,
    sandboxEngine: null,
    sandboxesUnsupported: "sandboxes run on one machine's Docker engine; this daemon runs containers on a Swarm cluster (--backend swarm), where they are not supported yet",
    gpuHost: new SwarmGpus(swarm),
    agents: (containerApi) => {
      api = containerApi;
      return hub.factory;
    },
    listen: () => hub.listen(),
    close: async () => {
      swarm.close();
      await hub.close();
    },
    describe: () => ({ backend: "swarm", registry: cfg.registry, agents: hub.wsUrl, network: cfg.swarmNetwork }),
  };
}

/** The address this node has in its swarm (what other nodes reach it at), when no --advertise-addr is given. */
async function swarmNodeAddr(socketPath: string): Promise<string> {
  const info = (await new Docker({ socketPath }).info()) as { Swarm?: { NodeAddr?: string } };
  const addr = info.Swarm?.NodeAddr;
  if (!addr) throw new Error("--backend swarm: this engine has no swarm address (run docker swarm init), or pass --advertise-addr HOST[:PORT]");
  return addr;
}
