// The dashboard's build (npm run build calls it through scripts/build.mjs) and its dev server:
//   GANTRY_URL=http://127.0.0.1:8700 npx vite dashboard   proxies /v1 to a running daemon
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { defineConfig } from "vite";

const here = dirname(fileURLToPath(import.meta.url));
const daemon = process.env.GANTRY_URL || "http://127.0.0.1:8700";

export default defineConfig({
  root: here,
  base: "/",
  logLevel: "warn",
  oxc: { jsx: { runtime: "automatic", importSource: "preact" } },
  build: { outDir: join(here, "dist"), emptyOutDir: true, target: "es2022", sourcemap: false, chunkSizeWarningLimit: 200 },
  server: { proxy: { "/v1": { target: daemon, ws: true } } },
});
