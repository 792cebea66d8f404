/**
 * Checks that each service image holds exactly what its code needs.
 *   npx tsx scripts/check-image-imports.ts             every `<service>/Dockerfile` (npm run lint runs this)
 *   npx tsx scripts/check-image-imports.ts --verbose   also list what each image needs
 *
 * For each image:
 * 1. Entry points: every `.ts` path its Dockerfile names (CMD, ENTRYPOINT, RUN — the service's
 *    entry module is named where `RUN node scripts/build.mjs <entry>` bundles it —, and the
 *    `docker run … npx tsx <file>` examples in its comments), every script a command runs with
 *    `node <file>.mjs`, every `.ts` path a Kubernetes
 *    manifest runs in a container of the image (`image: driftline/<service>` in `k8s/`), the
 *    files the code loads at run time in ways no import shows ({@link RUNTIME_FILES}), and every
 *    module of the service's own folder the image holds: code in an image must load there (a CLI
 *    of the service, a module only tests use).
 * 2. What they need: the import graph from the entry points — static imports and re-exports
 *    (`import type` / `export type` are erased and not followed), `import('…')` with a literal, and
 *    `new URL('…', import.meta.url)` (a worker entry, a data file or folder), `projectPath('…')` with
 *    literal segments (common/paths.ts: `package.json`, scenarios, the dashboard's public files) —
 *    followed through relative paths. A bare specifier must be a package `npm ci` installs in the
 *    image (`package-lock.json`, minus dev and, with `--omit=optional`, optional packages).
 * 3. What the image holds: the Dockerfile's COPY / ADD instructions, multi-stage `COPY --from`
 *    included, put repository files at paths under WORKDIR. Every needed file must sit at its
 *    repository path under the final stage's WORKDIR (relative imports need the layout).
 * 4. Nothing it does not run: a COPY that brings TypeScript must bring at least one needed module
 *    (copying another service's code, or the tests, fails). COPYs of data only (package files,
 *    tsconfig, scenarios, static assets) are left alone.
 */
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { isBuiltin } from 'node:module';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import ts from 'typescript';

/** Files a service loads at run time without an import the graph can see, by service folder. */
export const RUNTIME_FILES: Readonly<Record<string, readonly string[]>> = {
  // src/assets.ts bundles the browser client with esbuild at start and serves public/.
  dashboard: [
    'dashboard/src/client/app.ts',
    'dashboard/src/client/login.ts',
    'dashboard/public/index.html',
    'dashboard/public/login.html',
    'dashboard/public/app.css',
    'dashboard/public/favicon.svg',
  ],
};

/** Folders never part of a build context worth checking (dependencies, local state). */
const SKIP_DIRS = new Set([
  'node_modules',
  '.git',
  '.services',
  '.venv',
  '.venv-bench',
  '.driftline',
  'test-results',
  'coverage',
  'dist',
]);

const CODE = /\.(ts|mts|js|mjs)$/;
// eslint-disable-next-line security/detect-unsafe-regex -- linear: path segments are separated by '/', which no segment class matches; input is the repo's own files
const TS_PATH = /(?:^|[\s"'=[,(])((?:\.\/)?[\w.-]+(?:\/[\w.-]+)*\.ts)\b/g;

/** One image and what is wrong with it. */
export interface ImageReport {
  /** Service folder (`broker`, `edge-inference`, …). */
  service: string;
  dockerfile: string;
  /** Repository paths of the entry points. */
  entries: string[];
  /** Repository files the entry points need (code and data). */
  needed: string[];
  /** Repository files the final image holds at their repository path. */
  copied: string[];
  /** Empty when the image is fine. */
  problems: string[];
}

// ---- the repository -------------------------------------------------------------------------

/** Every file under `root` (repository-relative, `/`-separated), skipping dependencies and local state. */
export function listFiles(root: string): string[] {
  const out: string[] = [];
  const walk = (dir: string): void => {
    for (const entry of readdirSync(path.join(root, dir), { withFileTypes: true })) {
      if (entry.isDirectory()) {
        if (!SKIP_DIRS.has(entry.name)) walk(dir ? `${dir}/${entry.name}` : entry.name);
      } else if (entry.isFile()) out.push(dir ? `${dir}/${entry.name}` : entry.name);
    }
  };
  walk('');
  return out.sort();
}

/** A Docker / .dockerignore path pattern (`*`, `?`, `**`) as a regular expression over whole paths. */
function globRegex(pattern: string): RegExp {
  let re = '';
  const p = pattern.replace(/^\.?\/+/, '').replace(/\/+$/, '');
  for (let i = 0; i < p.length; i++) {
    const c = p[i] as string;
    if (c === '*' && p[i + 1] === '*') {
      re += '.*';
      i++;
      if (p[i + 1] === '/') i++;
    } else if (c === '*') re += '[^/]*';
    else if (c === '?') re += '[^/]';
    else re += c.replace(/[.+^${}()|[\]\\]/g, '\\$&');
  }
  // eslint-disable-next-line security/detect-non-literal-regexp -- built from a .dockerignore glob with every metacharacter escaped above
  return new RegExp(`^${re}$`);
}

/** The build context: every file minus what `.dockerignore` (when present) leaves out. */
function buildContext(root: string, files: readonly string[]): Set<string> {
  const ignoreFile = path.join(root, '.dockerignore');
  if (!existsSync(ignoreFile)) return new Set(files);
  const rules = readFileSync(ignoreFile, 'utf8')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'))
    .map((l) => ({ keep: l.startsWith('!'), re: globRegex(l.replace(/^!/, '')) }));
  return new Set(
    files.filter((f) => {
      let ignored = false;
      for (const r of rules) {
        // A pattern matches the path or any folder above it.
        const parts = f.split('/');
        const hit = parts.some((_, i) => r.re.test(parts.slice(0, i + 1).join('/')));
        if (hit) ignored = !r.keep;
      }
      return !ignored;
    }),
  );
}

// ---- the Dockerfile -------------------------------------------------------------------------

/** One build stage: its name and the repository files at each image path. */
interface Stage {
  name: string | undefined;
  workdir: string;
  /** Image path → repository path. */
  files: Map<string, string>;
  /** Repository files copied per COPY instruction (for the "nothing unneeded" rule). */
  copies: { line: string; files: string[] }[];
}

/** A Dockerfile's instructions, continuation lines joined; comments kept apart. */
function instructions(text: string): { instructions: string[]; comments: string[] } {
  const out: string[] = [];
  const comments: string[] = [];
  let current = '';
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line.startsWith('#')) {
      comments.push(line);
      continue;
    }
    if (line === '' && current === '') continue;
    if (line.endsWith('\\')) {
      current += `${line.slice(0, -1)} `;
      continue;
    }
    current += line;
    if (current.trim() !== '') out.push(current.trim());
    current = '';
  }
  if (current.trim() !== '') out.push(current.trim());
  return { instructions: out, comments };
}

/** The arguments of an instruction: a JSON array (exec form) or whitespace-separated words. */
function words(args: string): string[] {
  const t = args.trim();
  if (t.startsWith('[')) {
    try {
      const parsed: unknown = JSON.parse(t);
      if (Array.isArray(parsed)) return parsed.map(String);
    } catch {
      // not JSON: shell form
    }
  }
  return t.split(/\s+/).filter((w) => w !== '');
}

const posix = path.posix;

/**
 * Simulates the COPY / ADD instructions of each stage over the build context. Returns the stages
 * and the flags of the `npm ci` of the final stage.
 */
function simulate(
  text: string,
  context: ReadonlySet<string>,
  problems: string[],
): { stages: Stage[]; comments: string[]; commands: string[]; omitOptional: boolean } {
  const { instructions: lines, comments } = instructions(text);
  const stages: Stage[] = [];
  const commands: string[] = [];
  let omitOptional = false;
  for (const line of lines) {
    const [keyword = ''] = line.split(/\s+/);
    const kw = keyword.toUpperCase();
    const args = line.slice(keyword.length).trim();
    const stage = stages.at(-1);
    if (kw === 'FROM') {
      const w = words(args).filter((x) => !x.startsWith('--'));
      const as = w.findIndex((x) => x.toLowerCase() === 'as');
      const from = stages.find((s) => s.name !== undefined && s.name === w[0]);
      stages.push({
        name: as >= 0 ? w[as + 1] : undefined,
        workdir: from?.workdir ?? '/',
        files: new Map(from?.files ?? []),
        copies: [],
      });
      omitOptional = false;
      continue;
    }
    if (!stage) continue;
    if (kw === 'WORKDIR') stage.workdir = posix.resolve(stage.workdir, words(args)[0] ?? '.');
    else if (kw === 'RUN' || kw === 'CMD' || kw === 'ENTRYPOINT') {
      commands.push(args);
      if (kw === 'RUN' && /\bnpm\s+(ci|install)\b/.test(args))
        omitOptional = /--omit[= ]optional|--no-optional/.test(args);
    } else if (kw === 'COPY' || kw === 'ADD') {
      const w = words(args);
      const flags = w.filter((x) => x.startsWith('--'));
      const paths = w.filter((x) => !x.startsWith('--'));
      const dest = paths.pop();
      if (!dest || paths.length === 0) {
        problems.push(`cannot read "${line}"`);
        continue;
      }
      const fromFlag = flags.find((f) => f.startsWith('--from='))?.slice('--from='.length);
      const destAbs = posix.resolve(stage.workdir, dest);
      const destIsDir = dest.endsWith('/') || paths.length > 1;
      const copied: string[] = [];
      const put = (imagePath: string, repoPath: string): void => {
        stage.files.set(imagePath, repoPath);
        copied.push(repoPath);
      };
      if (fromFlag !== undefined) {
        const source = stages.find((s) => s.name === fromFlag) ?? stages[Number(fromFlag)];
        if (!source) continue; // an external image: nothing from this repository
        for (const src of paths) {
          const srcAbs = posix.resolve(source.workdir, src);
          for (const [imagePath, repoPath] of source.files) {
            if (imagePath === srcAbs)
              put(destIsDir ? posix.join(destAbs, posix.basename(srcAbs)) : destAbs, repoPath);
            else if (imagePath.startsWith(`${srcAbs}/`))
              put(posix.join(destAbs, imagePath.slice(srcAbs.length + 1)), repoPath);
          }
        }
      } else {
        for (const src of paths) {
          if (/^[a-z]+:\/\//i.test(src)) continue; // ADD of a URL
          const rel = src.replace(/^\.?\/+/, '').replace(/\/+$/, '');
          const matcher = /[*?[]/.test(rel) ? globRegex(rel) : undefined;
          let matched = false;
          for (const file of context) {
            if (matcher) {
              if (!matcher.test(file)) continue;
              matched = true;
              put(destIsDir || matcher ? posix.join(destAbs, posix.basename(file)) : destAbs, file);
            } else if (rel === '' || rel === '.' || file.startsWith(`${rel}/`)) {
              matched = true;
              put(posix.join(destAbs, rel === '' || rel === '.' ? file : file.slice(rel.length + 1)), file);
            } else if (file === rel) {
              matched = true;
              put(destIsDir ? posix.join(destAbs, posix.basename(file)) : destAbs, file);
            }
          }
          if (!matched) problems.push(`"${line}": ${src} is not in the build context`);
        }
      }
      stage.copies.push({ line, files: copied });
    }
  }
  return { stages, comments, commands, omitOptional };
}

// ---- the import graph -------------------------------------------------------------------------

/** The package a bare specifier names (`@scope/name/sub` → `@scope/name`). */
function packageName(specifier: string): string {
  const parts = specifier.split('/');
  return specifier.startsWith('@') ? parts.slice(0, 2).join('/') : (parts[0] as string);
}

/** What a module needs at run time: relative specifiers (modules and files) and bare packages. */
export function runtimeImports(file: string, source: string): { relative: string[]; packages: string[] } {
  const sf = ts.createSourceFile(file, source, ts.ScriptTarget.Latest, false, ts.ScriptKind.TS);
  const specifiers: string[] = [];
  const visit = (node: ts.Node): void => {
    if (ts.isImportDeclaration(node)) {
      if (!node.importClause?.isTypeOnly && ts.isStringLiteral(node.moduleSpecifier))
        specifiers.push(node.moduleSpecifier.text);
    } else if (ts.isExportDeclaration(node)) {
      if (!node.isTypeOnly && node.moduleSpecifier && ts.isStringLiteral(node.moduleSpecifier))
        specifiers.push(node.moduleSpecifier.text);
    } else if (ts.isCallExpression(node) && node.expression.kind === ts.SyntaxKind.ImportKeyword) {
      const arg = node.arguments[0];
      if (arg && ts.isStringLiteralLike(arg)) specifiers.push(arg.text);
    } else if (
      ts.isNewExpression(node) &&
      ts.isIdentifier(node.expression) &&
      node.expression.text === 'URL'
    ) {
      // new URL('./x', import.meta.url): a file next to this module.
      const [spec, base] = node.arguments ?? [];
      if (
        spec &&
        ts.isStringLiteralLike(spec) &&
        base &&
        ts.isPropertyAccessExpression(base) &&
        ts.isMetaProperty(base.expression) &&
        base.name.text === 'url' &&
        spec.text.startsWith('.')
      )
        specifiers.push(spec.text);
    } else if (
      ts.isCallExpression(node) &&
      ts.isIdentifier(node.expression) &&
      node.expression.text === 'projectPath' &&
      node.arguments.length > 0 &&
      node.arguments.every((a) => ts.isStringLiteralLike(a))
    ) {
      // projectPath('scenarios', 'x.json') (common/paths.ts): a file at that path under the project root.
      const target = node.arguments.map((a) => (a as ts.StringLiteralLike).text).join('/');
      const rel = posix.relative(posix.dirname(file), target);
      specifiers.push(rel.startsWith('.') ? rel : `./${rel}`);
    }
    ts.forEachChild(node, visit);
  };
  visit(sf);
  const relative = specifiers.filter((s) => s.startsWith('.'));
  const packages = specifiers.filter((s) => !s.startsWith('.') && !isBuiltin(s)).map(packageName);
  return { relative, packages: [...new Set(packages)] };
}

/** Packages `npm ci` installs in an image (top-level lockfile entries, minus dev and maybe optional ones). */
function installedPackages(root: string, omitOptional: boolean): Set<string> {
  const lock = JSON.parse(readFileSync(path.join(root, 'package-lock.json'), 'utf8')) as {
    packages?: Record<string, { dev?: boolean; optional?: boolean; devOptional?: boolean }>;
  };
  const out = new Set<string>();
  for (const [key, p] of Object.entries(lock.packages ?? {})) {
    // eslint-disable-next-line security/detect-unsafe-regex -- anchored at both ends, the optional scope cannot backtrack into the name ([^/] excludes the separator)
    const m = /^node_modules\/((?:@[^/]+\/)?[^/]+)$/.exec(key);
    if (!m || p.dev) continue;
    if (omitOptional && (p.optional || p.devOptional)) continue;
    out.add(m[1] as string);
  }
  return out;
}

/** Parsed imports by absolute path: the images share most of their modules. */
const parsed = new Map<string, { relative: string[]; packages: string[] }>();

/** Every repository file the entry points need, and what cannot be resolved. */
function importGraph(
  root: string,
  entries: readonly string[],
  files: ReadonlySet<string>,
  packages: ReadonlySet<string>,
  problems: string[],
): Set<string> {
  const needed = new Set<string>();
  const queue = [...entries];
  const missingPackages = new Map<string, string>();
  while (queue.length > 0) {
    const file = queue.shift() as string;
    if (needed.has(file)) continue;
    if (!files.has(file)) {
      // A folder (new URL('./dir/', …)): everything under it.
      const under = [...files].filter((f) => f.startsWith(`${file.replace(/\/$/, '')}/`));
      if (under.length === 0) problems.push(`${file} does not exist`);
      queue.push(...under);
      continue;
    }
    needed.add(file);
    if (!CODE.test(file)) continue;
    const key = path.join(root, file);
    let imports = parsed.get(key);
    if (!imports) {
      imports = runtimeImports(file, readFileSync(key, 'utf8'));
      parsed.set(key, imports);
    }
    const { relative, packages: used } = imports;
    for (const spec of relative) {
      const target = posix.normalize(posix.join(posix.dirname(file), spec));
      if (target.startsWith('..')) problems.push(`${file} imports ${spec}, outside the repository`);
      else queue.push(target);
    }
    for (const name of used)
      if (!packages.has(name) && !missingPackages.has(name)) missingPackages.set(name, file);
  }
  for (const [name, file] of missingPackages)
    problems.push(`${file} imports the package ${name}, which npm ci does not install in the image`);
  return needed;
}

// ---- one image, every image ---------------------------------------------------------------------

/** JavaScript files a command runs with `node <file>` (scripts/build.mjs, which the service images run). */
// eslint-disable-next-line security/detect-unsafe-regex -- linear, as TS_PATH
const NODE_SCRIPT = /\bnode\s+((?:\.\/)?[\w.-]+(?:\/[\w.-]+)*\.m?js)\b/g;

/** The scripts a text runs with node. */
function nodeScripts(text: string): string[] {
  return [...text.matchAll(NODE_SCRIPT)].map((m) => (m[1] as string).replace(/^\.\//, ''));
}

/** The `.ts` paths a text names (commands, comments, manifests). */
function tsPaths(text: string): string[] {
  return [...text.matchAll(TS_PATH)].map((m) => (m[1] as string).replace(/^\.\//, ''));
}

/** Entry points that Kubernetes manifests run in containers of `driftline/<service>`. */
function manifestEntries(root: string, files: readonly string[], service: string): string[] {
  const out: string[] = [];
  for (const file of files.filter((f) => f.startsWith('k8s/') && /\.ya?ml$/.test(f))) {
    for (const doc of readFileSync(path.join(root, file), 'utf8').split(/^---\s*$/m)) {
      // eslint-disable-next-line security/detect-non-literal-regexp -- `service` is one of the fixed service folder names
      if (new RegExp(`image:\\s*["']?driftline/${service}(?::[\\w.-]+)?["']?\\s*$`, 'm').test(doc))
        out.push(...tsPaths(doc));
    }
  }
  return out;
}

/** Checks the image of one service folder (see the module comment). */
export function checkImage(root: string, service: string, files: readonly string[]): ImageReport {
  const dockerfile = `${service}/Dockerfile`;
  const problems: string[] = [];
  const context = buildContext(root, files);
  const text = readFileSync(path.join(root, dockerfile), 'utf8');
  const { stages, comments, commands, omitOptional } = simulate(text, context, problems);
  const final = stages.at(-1);
  const fileSet = new Set(files);
  // The service's own code in the image: every module there must load (a CLI of the service, a
  // module only tests use), so each is an entry point too.
  const ownCode = final
    ? [...final.files]
        .filter(([imagePath, repoPath]) => imagePath === posix.join(final.workdir, repoPath))
        .map(([, repoPath]) => repoPath)
        .filter((f) => f.startsWith(`${service}/`) && CODE.test(f))
    : [];
  // Paths in comments are prose unless they exist (a documented `docker run … <file>` command).
  const documented = tsPaths(comments.join('\n')).filter((f) => fileSet.has(f));
  const entries = [
    ...new Set([
      ...tsPaths(commands.join('\n')),
      ...nodeScripts(commands.join('\n')),
      ...documented,
      ...manifestEntries(root, files, service),
      ...(RUNTIME_FILES[service] ?? []),
      ...ownCode.sort(),
    ]),
  ].filter((e) => {
    if (fileSet.has(e)) return true;
    problems.push(`entry point ${e} does not exist`);
    return false;
  });
  if (!final) problems.push('no FROM');
  if (entries.filter((e) => e.endsWith('.ts')).length === 0)
    problems.push('names no TypeScript entry point (CMD, ENTRYPOINT or a documented command)');
  const needed = importGraph(root, entries, fileSet, installedPackages(root, omitOptional), problems);
  const copied = new Set<string>();
  if (final) {
    for (const [imagePath, repoPath] of final.files)
      if (imagePath === posix.join(final.workdir, repoPath)) copied.add(repoPath);
    for (const file of [...needed].sort())
      if (!copied.has(file))
        problems.push(`needs ${file}, which is not copied to ${posix.join(final.workdir, file)}`);
    for (const copy of final.copies) {
      const code = copy.files.filter((f) => CODE.test(f));
      if (code.length > 0 && !code.some((f) => needed.has(f)))
        problems.push(`"${copy.line}" copies ${code.length} code file(s), none of which the image runs`);
    }
  }
  return {
    service,
    dockerfile,
    entries,
    needed: [...needed].sort(),
    copied: [...copied].sort(),
    problems,
  };
}

/** Every service folder with a Dockerfile. */
export function checkImages(root: string): ImageReport[] {
  const files = listFiles(root);
  return files
    .filter((f) => /^[^/]+\/Dockerfile$/.test(f))
    .map((f) => f.split('/')[0] as string)
    .map((service) => checkImage(root, service, files));
}

function main(): void {
  const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
  const verbose = process.argv.includes('--verbose');
  const reports = checkImages(root);
  let failed = false;
  for (const r of reports) {
    const copiedCode = r.copied.filter((f) => CODE.test(f)).length;
    const neededCode = r.needed.filter((f) => CODE.test(f)).length;
    process.stdout.write(
      `${r.dockerfile}: ${r.entries.length} entry point(s), ${neededCode} module(s) needed, ` +
        `${copiedCode} copied${r.problems.length === 0 ? ': ok' : ''}\n`,
    );
    if (verbose) for (const f of r.needed) process.stdout.write(`  ${f}\n`);
    for (const p of r.problems) process.stdout.write(`  ✗ ${p}\n`);
    if (r.problems.length > 0) failed = true;
  }
  if (reports.length === 0) {
    process.stdout.write('no <service>/Dockerfile found\n');
    failed = true;
  }
  process.exitCode = failed ? 1 : 0;
}

if (process.argv[1] && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) main();
