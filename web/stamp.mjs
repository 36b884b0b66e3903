// Writes dist/source.sha256: the hash of the UI's sources and lockfile, so
// a Go test can tell that the committed build is of the committed source.
import { createHash } from "node:crypto";
import { readFileSync, readdirSync, statSync, writeFileSync } from "node:fs";
import { join, relative } from "node:path";

const root = new URL(".", import.meta.url).pathname;
const files = ["index.html", "package.json", "package-lock.json", "vite.config.js"];
const walk = (dir) => {
  for (const name of readdirSync(join(root, dir)).sort()) {
    const p = join(dir, name);
    if (statSync(join(root, p)).isDirectory()) walk(p);
    else files.push(p);
  }
};
walk("src");
files.sort();
const h = createHash("sha256");
for (const f of files) {
  h.update(relative(root, join(root, f)) + "\n");
  h.update(readFileSync(join(root, f)));
}
writeFileSync(join(root, "../internal/server/ui/dist/source.sha256"), h.digest("hex") + "\n");
