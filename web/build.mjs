// Rebuild the dashboard bundle vendored into the Python package.
//
//   cd web && npm ci && npm run build
//
// esbuild bundles src/dashboard/main.ts with OpenLayers, netcdfjs, proj4,
// topojson-client and the world-atlas coastlines into one ES module; the CSS
// is OpenLayers' plus ours. Output goes to ../dasf_geo/web/static/ (served by
// the gateway at /), the DASF client that generated TypeScript stubs inline
// to ../dasf_geo/web/ts/dasf_client.ts, and json-schema-to-typescript, the
// type converter the stub generator runs with node, to
// ../dasf_geo/web/tools/json2ts.cjs.
import { build } from "esbuild";
import { mkdirSync, readFileSync, writeFileSync, copyFileSync, existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
// DASF_GEO_WEB_OUT builds elsewhere (the tests compare that with the committed files)
const pkg = process.env.DASF_GEO_WEB_OUT ?? join(here, "..", "dasf_geo", "web");
const staticDir = join(pkg, "static");
for (const dir of [staticDir, join(pkg, "ts"), join(pkg, "tools")]) mkdirSync(dir, { recursive: true });

const result = await build({
  entryPoints: [join(here, "src/dashboard/main.ts")],
  bundle: true,
  format: "esm",
  target: "es2022",
  minify: true,
  sourcemap: false,
  legalComments: "none",
  metafile: true,
  loader: { ".json": "json" },
  outfile: join(staticDir, "dashboard.js"),
  logLevel: "warning",
});

writeFileSync(
  join(staticDir, "dashboard.css"),
  `/* OpenLayers (BSD-2-Clause) */\n${readFileSync(join(here, "node_modules/ol/ol.css"), "utf8")}\n/* dasf_geo */\n${readFileSync(join(here, "style.css"), "utf8")}`,
);
copyFileSync(join(here, "index.html"), join(staticDir, "index.html"));

// the licences of every package in the bundle
const packages = new Set();
for (const input of Object.keys(result.metafile.inputs)) {
  const m = /node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(input);
  if (m) packages.add(m[1]);
}
let notices = "Third-party software bundled in dashboard.js (built by web/build.mjs)\n";
for (const name of [...packages].sort()) {
  const dir = join(here, "node_modules", name);
  const meta = JSON.parse(readFileSync(join(dir, "package.json"), "utf8"));
  const file = ["LICENSE", "LICENSE.md", "LICENSE.txt", "license", "LICENCE"].map((f) => join(dir, f)).find(existsSync);
  notices += `\n${"=".repeat(72)}\n${name} ${meta.version} (${meta.license})\n${"=".repeat(72)}\n`;
  notices += file ? readFileSync(file, "utf8") : `${meta.license}\n`;
}
notices += "\nThe coastlines (world-atlas land-110m) are derived from Natural Earth, which is in the public domain.\n";
writeFileSync(join(staticDir, "THIRD_PARTY_LICENSES.txt"), notices);

// the DASF client as one dependency-free file, inlined into generated stubs
const modules = ["base64", "crc32", "fragments", "client"];
let client = "// The dasf_geo DASF WebSocket client (web/src/dasf/*.ts, joined by web/build.mjs).\n";
for (const name of modules) {
  const source = readFileSync(join(here, "src/dasf", `${name}.ts`), "utf8")
    // imports between these modules disappear once they are one file
    .replace(/^import[^;]*from "\.\/[a-z0-9]+";\n/gms, "")
    .replace(/^export \{ randomHex \};\n/m, "");
  client += `\n// --- ${name}.ts\n${source}`;
}
writeFileSync(join(pkg, "ts", "dasf_client.ts"), client);

// json-schema-to-typescript for the stub generator, without prettier
// (types are emitted unformatted and the generator lays out the file)
await build({
  entryPoints: [join(here, "src/tools/json2ts.ts")],
  bundle: true,
  platform: "node",
  format: "cjs",
  target: "node20",
  minify: true,
  legalComments: "inline",
  alias: { prettier: join(here, "src/tools/no-prettier.ts") },
  outfile: join(pkg, "tools", "json2ts.cjs"),
  logLevel: "warning",
});
console.log(`built ${Object.keys(result.metafile.outputs).join(", ")} from ${packages.size} packages`);
