// Modal's job-queue example on gantry: deploy, spawn calls, poll results by call ID.
//   gantry deploy examples/job-queue/app.ts
//   gantry spawn my-job-queue process_job '{"x":1}'
import { App, Image } from "gantry";

const app = new App("my-job-queue");

export const process_job = app.function(
  { image: Image.node(), retries: 3, timeout: 60 },
  async function process_job(data: unknown) {
    return { result: data };
  },
);

export default app;
