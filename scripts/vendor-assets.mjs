// Copy the front-end libraries the pages load from node_modules/ (installed by `npm ci` from the
// npm registry) into static/vendor/, which is gitignored: nothing third-party lives in the repo.
import { copyFileSync, mkdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const files = {
  "htmx.org/dist/htmx.min.js": "htmx.min.js",
  "uplot/dist/uPlot.iife.min.js": "uPlot.iife.min.js",
  "uplot/dist/uPlot.min.css": "uPlot.min.css",
};
const target = join(root, "static", "vendor");
mkdirSync(target, { recursive: true });
for (const [source, name] of Object.entries(files)) {
  copyFileSync(join(root, "node_modules", source), join(target, name));
}
console.log(`copied ${Object.keys(files).length} files to static/vendor/`);
