/** The `gantry` package: define apps (App, Image) and call deployed functions (GantryClient). */
export { App, type FetchHandler, type FunctionDefinitionOptions, type FunctionHandle, type WebEndpointOptions } from "./app.js";
export { Image } from "./image.js";
export { Secret } from "./secret.js";
export { Volume, Volumes, type PutDirectoryOptions, type PutDirectoryResult, type PutFileOptions, type UploadProgress } from "./volume.js";
export { Dict, Dicts, type DictEntries } from "./dict.js";
export { Queue, Queues, type QueueGetOptions, type QueueIterateOptions, type QueuePutOptions } from "./queue.js";
export { Cls, ClsInstance, GantryClient, Function_, FunctionCall, type CallOptions, type GantryClientOptions } from "./client.js";
export * from "./errors.js";
export {
  ContainerProcess,
  Sandbox,
  SandboxCreateError,
  Sandboxes,
  type ProcessView,
  type SandboxCreateParams,
  type SandboxEntry,
  type SandboxExecParams,
  type SandboxListParams,
  type SandboxState,
  type SandboxView,
} from "./sandbox.js";
export { SandboxReadStream, SandboxWriteStream } from "./sandbox-streams.js";
export type { MapOptions } from "./map.js";
export type { CallView, FunctionView, ContainerView, SecretView } from "../protocol/api.js";
export type { VolumeEntry, VolumeView } from "../protocol/volumes.js";
export type { DictView, QueueView } from "../protocol/dicts-queues.js";
export { DQ_LIMITS } from "../protocol/dicts-queues.js";
export { Cron, Period } from "./schedule.js";
export { currentInput, type InputContext } from "./input-context.js";
