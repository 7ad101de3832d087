// Fails when the console's API types are stale (`npm run check-types`, part of `npm test`):
//  1. console/openapi.json must equal the document the Python app builds now (`python -m morgus.app.openapi`);
//  2. src/api-types.ts must equal what openapi-typescript generates from console/openapi.json.
// To refresh both: `python -m morgus.app.openapi > console/openapi.json && (cd console && npm run gen-types)`.
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const consoleDir = join(dirname(fileURLToPath(import.meta.url)), "..");
const repo = join(consoleDir, "..");
const fix = "run `python -m morgus.app.openapi > console/openapi.json` at the repository root, then `npm run gen-types` in console/";
let stale = false;

let current;
try {
  current = execFileSync(process.env.PYTHON ?? "python3", ["-m", "morgus.app.openapi"], { cwd: repo, encoding: "utf8" });
} catch (e) {
  console.error(`check-types: could not build the OpenAPI document with Python (${e.message.split("\n")[0]})`);
  process.exit(1);
}
if (current !== readFileSync(join(consoleDir, "openapi.json"), "utf8")) {
  console.error("check-types: console/openapi.json differs from the API's document.");
  stale = true;
}

const tmp = mkdtempSync(join(tmpdir(), "morgus-api-types-"));
try {
  const out = join(tmp, "api-types.ts");
  execFileSync(join(consoleDir, "node_modules", ".bin", "openapi-typescript"), ["openapi.json", "-o", out],
    { cwd: consoleDir, stdio: ["ignore", "ignore", "inherit"] });
  if (readFileSync(out, "utf8") !== readFileSync(join(consoleDir, "src", "api-types.ts"), "utf8")) {
    console.error("check-types: src/api-types.ts is not what openapi-typescript generates from console/openapi.json.");
    stale = true;
  }
} finally {
  rmSync(tmp, { recursive: true, force: true });
}

if (stale) {
  console.error(`check-types: the console's API types are stale; ${fix}`);
  process.exit(1);
}
console.log("check-types: console/openapi.json and src/api-types.ts match the API");
