// deno-lint-ignore-file no-console
/**
 * `deno task vendor`: regenerates `src/vendor/*.js`, zod, LogTape and OpenTelemetry's API each
 * bundled into one plain ES module from the npm packages deno.lock pins (each bundle ends with
 * the licences of its packages), and `--check` tells whether the committed files are what this
 * produces (a test runs it).
 *
 * Why: a Deno process that loads any `npm:` package sets up Node compatibility for it (npm
 * resolution, Node's globals, `process`, `Buffer`), which a process importing only local
 * modules never pays. Every executor loads zod (task modules import `z` from perago) and
 * logs, so that set-up was a fixed part of every executor's idle memory. Measured with the
 * executor's flags and idle collection (Deno 2.9.6): an empty script holds 36.1 MiB RSS;
 * importing `npm:zod@4.6.7` 43.2, the same zod bundled 40.1; bundled zod plus
 * `npm:@logtape/logtape` 43.6, plus the bundled LogTape 41.6. The bundles are the packages'
 * own code, unchanged but for the patches listed below (no minifying, no tree-shaking).
 *
 * perago's own modules (and `mod.ts`, whose `z` task modules use) import the wrappers
 * `src/vendor/*.ts` by relative path, which carry the packages' own types (`// @ts-types`
 * naming the npm package), so type checking, `deno.lock` and the import map (`zod` and the
 * others still name the npm packages, for task authors who import them) stay as they were. A
 * relative path, not the import map: under a task project's own `--config` (the layout
 * `perago init` writes), the project's import map resolves the bare names in perago's modules
 * too. zod loaded both ways in one process works: zod's `instanceof` checks and its global
 * registry do not depend on which copy made a schema. Going back to loading a package from npm
 * is one line in its wrapper (`export * from "npm:zod@4.6.7";`). Bumping a package: change its
 * specifier here, run `deno task vendor`, commit deno.lock and `src/vendor/`. The cost: 0.9 MB
 * of generated code in the repository, regenerated on each bump; tests/vendor_test.ts fails
 * when it no longer matches what this script generates from the pinned packages.
 *
 * Usage: deno task vendor [--check]
 *
 * @module
 */

/** One vendored bundle: the npm packages it holds and the wrapper modules typing it. */
export interface VendoredBundle {
  /** File name under `src/vendor/`. */
  file: string;
  /** The bundle's entry module (re-exports from exact `npm:` specifiers). */
  entry: string;
  /**
   * Exact replacements made in the bundle, each with why; generating fails when a `from` text is
   * no longer there (a new version needs the patch looked at again).
   */
  patches?: readonly { from: string; to: string; why: string }[];
  /** Wrapper modules (`src/vendor/<name>`) and the `npm:` specifier whose types they carry. */
  wrappers: readonly { file: string; types: string; exports: readonly string[] }[];
}

/** What `src/vendor/` holds. The specifiers are the ones deno.lock pins. */
export const VENDORED_BUNDLES: readonly VendoredBundle[] = [
  {
    file: "zod.js",
    entry: 'export * from "npm:zod@4.6.7";\nexport { z, z as default } from "npm:zod@4.6.7";\n',
    wrappers: [{
      file: "zod.ts",
      types: "npm:zod@4.6.7",
      exports: ['export * from "./zod.js";', 'export { z, z as default } from "./zod.js";'],
    }],
  },
  {
    // LogTape and its redaction in one file: the redaction imports LogTape, and LogTape keeps
    // its configuration in module state, so both must share one copy of it.
    file: "logtape.js",
    patches: [{
      // LogTape's Node build of its `#util` (the one Deno's npm resolution picks: the package
      // lists the `node` condition before `deno`) imports node:util for util.inspect, which
      // LogTape calls only where Deno.inspect is missing, never under Deno; its Deno build
      // uses Deno.inspect. Importing node:util set up Node compatibility in every process that
      // logs (with perago's own node: imports gone from an idle executor, 0.6 MiB of it).
      from: 'import util from "node:util";\n',
      to: "var util = { inspect: (value, options) => Deno.inspect(value, options) };\n",
      why: "LogTape's Deno build of #util: Deno.inspect instead of node:util",
    }],
    entry: 'export * from "npm:@logtape/logtape@2.4.2";\n' +
      'export { redactByField } from "npm:@logtape/redaction@2.3.7";\n',
    wrappers: [
      {
        file: "logtape.ts",
        types: "npm:@logtape/logtape@2.4.2",
        exports: ['export * from "./logtape.js";'],
      },
      {
        file: "logtape_redaction.ts",
        types: "npm:@logtape/redaction@2.3.7",
        exports: ['export { redactByField } from "./logtape.js";'],
      },
    ],
  },
  {
    // OpenTelemetry's API, which the first attempt loads (traces and metrics): as an npm
    // package it was the first `npm:` package of an executor's life, setting up Node
    // compatibility on its first attempt. The API keeps its registrations (the tracer and
    // meter providers Deno's built-in OpenTelemetry installs) on `globalThis` under a symbol
    // named for its major version, so this copy sees the same providers an npm copy would.
    file: "opentelemetry_api.js",
    entry: 'export * from "npm:@opentelemetry/api@1.10.0";\n',
    wrappers: [{
      file: "opentelemetry_api.ts",
      types: "npm:@opentelemetry/api@1.10.0",
      exports: ['export * from "./opentelemetry_api.js";'],
    }],
  },
];

const VENDOR_DIR = new URL("../src/vendor/", import.meta.url);
const CONFIG = new URL("../deno.json", import.meta.url);

/** The generated files (name under `src/vendor/` to text), bundled with `deno bundle`. */
export async function vendoredFiles(): Promise<Map<string, string>> {
  const files = new Map<string, string>();
  const work = await Deno.makeTempDir({ prefix: "perago-vendor-" });
  try {
    for (const bundle of VENDORED_BUNDLES) {
      const entry = `${work}/${bundle.file.replace(/\.js$/, "")}_entry.ts`;
      const out = `${work}/${bundle.file}`;
      await Deno.writeTextFile(entry, bundle.entry);
      const result = await new Command(entry, out).output();
      if (!result.success) {
        throw new Error(
          `vendor: deno bundle of ${bundle.file} failed: ${
            new TextDecoder().decode(result.stderr).trim()
          }; run \`deno install\` to fetch the locked packages, then retry`,
        );
      }
      let text = normalizePaths(await Deno.readTextFile(out));
      for (const patch of bundle.patches ?? []) {
        if (!text.includes(patch.from)) {
          throw new Error(
            `vendor: ${bundle.file} no longer contains ${JSON.stringify(patch.from)}; look at ` +
              `the patch "${patch.why}" again for this version`,
          );
        }
        text = text.replace(patch.from, `// perago: ${patch.why}\n${patch.to}`);
      }
      files.set(bundle.file, header(bundle) + text + await licenceNotices(bundle));
      for (const wrapper of bundle.wrappers) {
        files.set(wrapper.file, wrapperText(bundle, wrapper));
      }
    }
  } finally {
    await Deno.remove(work, { recursive: true }).catch(() => {});
  }
  return files;
}

/** The exact `npm:` specifiers a bundle's entry names, in order, each once. */
function bundledPackages(bundle: VendoredBundle): string[] {
  return [...new Set([...bundle.entry.matchAll(/"(npm:[^"]+)"/g)].map((m) => m[1]!))];
}

/**
 * The licence of each bundled package, from the package itself, as comments ending the bundle:
 * a copy of the code carries its licence (MIT and Apache-2.0 both ask for that).
 */
async function licenceNotices(bundle: VendoredBundle): Promise<string> {
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["info", "--json"],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const { npmCache } = JSON.parse(new TextDecoder().decode(output.stdout)) as {
    npmCache: string;
  };
  let notices = "";
  for (const specifier of bundledPackages(bundle)) {
    const [, name, version] = specifier.match(/^npm:((?:@[^/@]+\/)?[^@]+)@(.+)$/)!;
    const dir = `${npmCache}/registry.npmjs.org/${name}/${version}`;
    let licence: string | undefined;
    for (const file of ["LICENSE", "LICENSE.md", "LICENSE.txt", "license"]) {
      licence = await Deno.readTextFile(`${dir}/${file}`).catch(() => undefined);
      if (licence !== undefined) break;
    }
    if (licence === undefined) {
      throw new Error(
        `vendor: ${specifier} has no LICENSE file in ${dir}; a bundled package must carry its ` +
          "licence: check the package's terms before vendoring it",
      );
    }
    const lines = latin1(licence).replace(/\s+$/, "").split("\n").map((line) =>
      `// ${line}`.trimEnd()
    );
    notices += `\n// The licence of ${specifier}:\n//\n${lines.join("\n")}\n`;
  }
  return notices;
}

/**
 * `text` with each character past Latin-1 written as a `\uXXXX` escape. One such character
 * anywhere in a module, a comment included, makes V8 hold the module's whole source as UTF-16,
 * twice its bytes, in every process that loads it: LogTape's licence notice has an en dash
 * ("2024\u20132026"), which made its 168 KB bundle 336 KB of each executor's heap.
 */
export function latin1(text: string): string {
  return text.replace(
    /[\u0100-\uffff]/g,
    (char) => `\\u${char.charCodeAt(0).toString(16).padStart(4, "0")}`,
  );
}

/** `deno bundle <entry> -o <out>` with perago's config and lock (the lock must not change). */
class Command extends Deno.Command {
  constructor(entry: string, out: string) {
    super(Deno.execPath(), {
      args: ["bundle", "--quiet", "--config", CONFIG.pathname, "--frozen", "-o", out, entry],
      stdout: "piped",
      stderr: "piped",
    });
  }
}

function header(bundle: VendoredBundle): string {
  return `// Generated by \`deno task vendor\` (scripts/vendor.ts): ${
    bundledPackages(bundle).join(" + ")
  }\n// bundled unchanged into one module, their licences at the end. Do not edit; regenerate.\n`;
}

function wrapperText(bundle: VendoredBundle, wrapper: VendoredBundle["wrappers"][number]): string {
  return `/**
 * ${wrapper.types}, loaded from the bundle \`${bundle.file}\` and typed by the npm package
 * itself: no \`npm:\` loading at run time (see scripts/vendor.ts). Generated by
 * \`deno task vendor\`; do not edit.
 *
 * @module
 */
${wrapper.exports.map((line) => `// @ts-types="${wrapper.types}"\n${line}\n`).join("")}`;
}

/** The bundler's comments name each source by its path in this machine's npm cache. */
function normalizePaths(text: string): string {
  return text.replace(
    /^\/\/ (?:\.\.\/)*(?:[^\s]*\/)?registry\.npmjs\.org\/((?:@[^/\s]+\/)?[^/\s]+)\/([^/\s]+)\//gm,
    "// npm:$1@$2/",
  );
}

if (import.meta.main) {
  const unknown = Deno.args.filter((arg) => arg !== "--check");
  if (unknown.length > 0) {
    console.error(`vendor: unknown argument ${unknown[0]}; usage: deno task vendor [--check]`);
    Deno.exit(2);
  }
  const check = Deno.args.includes("--check");
  const files = await vendoredFiles();
  let stale = 0;
  for (const [name, text] of files) {
    const url = new URL(name, VENDOR_DIR);
    const current = await Deno.readTextFile(url).catch(() => undefined);
    if (current === text) continue;
    if (check) {
      console.error(`src/vendor/${name} differs from what deno task vendor generates`);
      stale++;
    } else {
      await Deno.writeTextFile(url, text);
      console.log(`wrote src/vendor/${name}`);
    }
  }
  if (stale > 0) {
    console.error("vendor: run `deno task vendor` and commit src/vendor/");
    Deno.exit(1);
  }
}
