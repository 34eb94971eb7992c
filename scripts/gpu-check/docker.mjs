// Small Docker Engine API steps for gpu-check.sh, so that the GPU machine needs no docker CLI:
//   node docker.mjs ping SOCKET            exits 0 when an engine answers
//   node docker.mjs import SOCKET DIR TAG  imports the folder DIR as the image TAG
import Docker from "dockerode";
import { pack } from "tar-fs";

const [cmd, socketPath, dir, tag] = process.argv.slice(2);
const docker = new Docker({ socketPath });

if (cmd === "ping") {
  await docker.ping().catch(() => process.exit(1));
} else if (cmd === "import" && dir && tag) {
  const [repo, version] = tag.split(":");
  const stream = await docker.importImage(pack(dir), { repo, tag: version ?? "latest" });
  await new Promise((resolve, reject) => docker.modem.followProgress(stream, (err) => (err ? reject(err) : resolve())));
  const info = await docker.getImage(tag).inspect();
  console.log(`imported ${dir} as ${tag} (${(info.Size / 1e6).toFixed(1)} MB)`);
} else {
  console.error("usage: node docker.mjs ping SOCKET | import SOCKET DIR TAG");
  process.exit(2);
}
