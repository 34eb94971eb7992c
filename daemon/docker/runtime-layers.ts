/**
 * Reads gantry's runtime layer for each language from the package: the Dockerfile under
 * runtime-images/<runtime>/ and the files it copies (the Node agent bundle; the Python agent and
 * the `gantry` Python package that app files import).
 */
import { readdir, readFile } from "node:fs/promises";
import { join, relative } from "node:path";
import type { Runtime } from "../../protocol/function-spec.js";
import type { RuntimeLayer } from "./image-plan.js";

export interface RuntimeLayerPaths {
  /** runtime-images/ of the package. */
  runtimeImagesDir: string;
  /** python/gantry/ of the package. */
  pythonPackageDir: string;
}

/** /opt/gantry/package.json makes /opt/gantry the npm project that npmInstall() packages land in. */
const NODE_PACKAGE_JSON = Buffer.from('{"private":true}\n');

async function pythonSources(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true })) {
    if (e.isDirectory() && e.name !== "__pycache__") out.push(...(await pythonSources(join(dir, e.name))));
    else if (e.isFile() && e.name.endsWith(".py")) out.push(join(dir, e.name));
  }
  return out;
}

async function missing<T>(what: string, p: Promise<T>, hint = "run npm run build"): Promise<T> {
  return p.catch((err: NodeJS.ErrnoException) => {
    throw new Error(`${what} is missing (${err.code ?? err.message}): ${hint}`);
  });
}

export async function loadRuntimeLayer(runtime: Runtime, paths: RuntimeLayerPaths): Promise<RuntimeLayer> {
  const dir = join(paths.runtimeImagesDir, runtime);
  const broken = "gantry's installation is incomplete";
  const dockerfile = await missing(`the ${runtime} runtime Dockerfile`, readFile(join(dir, "Dockerfile"), "utf8"), broken);
  const installer = await missing("the image installer runtime-images/build/install.sh", readFile(join(paths.runtimeImagesDir, "build", "install.sh")), broken);
  if (runtime === "node") {
    const agent = await missing("the node agent bundle runtime-images/node/dist/agent.cjs", readFile(join(dir, "dist", "agent.cjs")));
    return { runtime, dockerfile, installer, files: { "agent.cjs": agent, "package.json": NODE_PACKAGE_JSON } };
  }
  const files: Record<string, Buffer> = {};
  for (const name of ["agent.py", "gantry_websocket.py", "gantry_web.py", "gantry_asgi.py", "gantry_wsgi.py", "gantry_batch.py", "gantry_cancel.py"]) files[name] = await missing(`the python agent's ${name}`, readFile(join(dir, name)), broken);
  for (const file of (await pythonSources(paths.pythonPackageDir)).sort()) {
    files[`gantry/${relative(paths.pythonPackageDir, file)}`] = await readFile(file);
  }
  return { runtime, dockerfile, installer, files };
}
