import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { checkImage, checkImages, listFiles, runtimeImports } from '../../../scripts/check-image-imports.ts';

const roots: string[] = [];
afterAll(async () => {
  await Promise.all(roots.map((r) => rm(r, { recursive: true, force: true })));
});

/** A repository in a temp dir: `files` maps paths to contents; a lockfile with `packages`. */
async function repo(
  files: Record<string, string>,
  packages: Record<string, { dev?: boolean; optional?: boolean }> = {},
): Promise<string> {
  const root = await mkdtemp(path.join(os.tmpdir(), 'driftline-image-check-'));
  roots.push(root);
  const lock = {
    lockfileVersion: 3,
    packages: {
      '': {},
      ...Object.fromEntries(Object.entries(packages).map(([n, p]) => [`node_modules/${n}`, p])),
    },
  };
  const all = {
    'package.json': '{"name":"x","version":"1.0.0"}',
    'package-lock.json': JSON.stringify(lock),
    ...files,
  };
  for (const [file, text] of Object.entries(all)) {
    await mkdir(path.dirname(path.join(root, file)), { recursive: true });
    await writeFile(path.join(root, file), text);
  }
  return root;
}

const DOCKERFILE = (extra = ''): string => `FROM node:20-slim
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --omit=optional
COPY common ./common
COPY svc/src ./svc/src
${extra}
CMD ["npx", "tsx", "svc/src/main.ts"]
`;

function check(root: string, service = 'svc'): string[] {
  return checkImage(root, service, listFiles(root)).problems;
}

describe('check-image-imports: the repository', () => {
  it('every service image holds what its code imports, and no code it does not run', () => {
    const reports = checkImages(process.cwd());
    expect(reports.map((r) => r.service).sort()).toEqual([
      'broker',
      'dashboard',
      'edge-inference',
      'jobs',
      'kafka-bridge',
      'retrainer',
      'simulator',
    ]);
    for (const r of reports) expect(r.problems, r.dockerfile).toEqual([]);
    // The entry points come from the CMD, the documented commands and the manifests.
    const broker = reports.find((r) => r.service === 'broker');
    expect(broker?.entries).toEqual(
      expect.arrayContaining([
        'broker/src/main.ts',
        'broker/src/credentials-cli.ts',
        'broker/src/kafka-bridge-main.ts',
      ]),
    );
    // The bridge's own image holds the bridge and common/ only (built there by scripts/build.mjs); the jobs
    // image its two programs.
    const bridge = reports.find((r) => r.service === 'kafka-bridge');
    expect(bridge?.entries).toEqual(['broker/src/kafka-bridge-main.ts', 'scripts/build.mjs']);
    expect(bridge?.needed.filter((f) => f.startsWith('broker/'))).toEqual([
      'broker/src/kafka-bridge-main.ts',
      'broker/src/kafka-bridge.ts',
    ]);
    const jobs = reports.find((r) => r.service === 'jobs');
    expect(jobs?.entries).toEqual(
      expect.arrayContaining(['jobs/src/kafka-provision.ts', 'jobs/src/bootstrap-champion.ts']),
    );
    // The training worker is started through new URL(…, import.meta.url), package.json read likewise.
    const retrainer = reports.find((r) => r.service === 'retrainer');
    expect(retrainer?.needed).toEqual(
      expect.arrayContaining(['retrainer/src/train-worker.ts', 'package.json']),
    );
  });
});

describe('check-image-imports: what it catches', () => {
  it('a module of another service that the image does not copy', async () => {
    const root = await repo({
      'svc/Dockerfile': DOCKERFILE(),
      'svc/src/main.ts':
        "import { a } from '../../other/src/a.ts';\nimport { c } from '../../common/c.ts';\nexport const m = a + c;\n",
      'other/src/a.ts': 'export const a = 1;\n',
      'common/c.ts': 'export const c = 2;\n',
    });
    expect(check(root)).toEqual(['needs other/src/a.ts, which is not copied to /app/other/src/a.ts']);
  });

  it('does not follow import type / export type (erased), but follows every runtime form', () => {
    const src = [
      "import type { T } from './t.ts';",
      "export type { U } from './u.ts';",
      "import { type V, w } from './w.ts';",
      "export { x } from './x.ts';",
      "import './side-effect.ts';",
      "const y = await import('./y.ts');",
      "const z = new URL('./z.json', import.meta.url);",
      "const p = projectPath('package.json'), s = projectPath('scenarios', 's.json'), d = projectPath(dir);",
      "import fs from 'node:fs';",
      "import { z as zod } from 'zod';",
      "import { Kafka } from 'kafkajs/sub';",
    ].join('\n');
    expect(runtimeImports('m.ts', src)).toEqual({
      relative: [
        './w.ts',
        './x.ts',
        './side-effect.ts',
        './y.ts',
        './z.json',
        './package.json',
        './scenarios/s.json',
      ],
      packages: ['zod', 'kafkajs'],
    });
  });

  it('a COPY of code the image never runs (another service, the tests)', async () => {
    const root = await repo({
      'svc/Dockerfile': DOCKERFILE('COPY tests ./tests'),
      'svc/src/main.ts': 'export const m = 1;\n',
      'common/c.ts': 'export const c = 2;\n',
      'tests/t.test.ts': 'export const t = 3;\n',
    });
    const problems = check(root);
    expect(problems).toContain('"COPY tests ./tests" copies 1 code file(s), none of which the image runs');
    expect(problems).toContain('"COPY common ./common" copies 1 code file(s), none of which the image runs');
  });

  it('every module of the service folder must load in the image, and data read through new URL must be there', async () => {
    const root = await repo({
      'svc/Dockerfile': DOCKERFILE(),
      'svc/src/main.ts': "import { c } from '../../common/c.ts';\nexport const m = c;\n",
      'svc/src/tool-cli.ts': "import { d } from '../../common/d.ts';\nexport const t = d;\n",
      'common/c.ts': 'export const c = 2;\n',
      'common/d.ts': "export const d = new URL('../data/d.json', import.meta.url);\n",
      'data/d.json': '{}',
    });
    expect(check(root)).toEqual(['needs data/d.json, which is not copied to /app/data/d.json']);
  });

  it('packages npm ci leaves out of the image: dev dependencies, and optional ones with --omit=optional', async () => {
    const root = await repo(
      {
        'svc/Dockerfile': DOCKERFILE(),
        'svc/src/main.ts':
          "import 'vitest';\nimport 'fancy';\nimport 'zod';\nimport 'node:path';\nimport 'path';\nimport '../../common/c.ts';\n",
        'common/c.ts': 'export const c = 2;\n',
      },
      { vitest: { dev: true }, fancy: { optional: true }, zod: {} },
    );
    expect(check(root)).toEqual([
      'svc/src/main.ts imports the package vitest, which npm ci does not install in the image',
      'svc/src/main.ts imports the package fancy, which npm ci does not install in the image',
    ]);
  });

  it('follows multi-stage builds, manifests that run another entry point, and .dockerignore', async () => {
    const files = {
      'svc/Dockerfile': `FROM node:20-slim AS build
WORKDIR /src
COPY common ./common
COPY svc/src ./svc/src
FROM node:20-slim
WORKDIR /app
COPY --from=build /src/common ./common
COPY --from=build /src/svc ./svc
COPY --from=tini-image /tini /tini
ENTRYPOINT ["/tini", "--"]
CMD ["node", "--import", "tsx", "svc/src/main.ts"]
`,
      'svc/src/main.ts': "import { c } from '../../common/c.ts';\nexport const m = c;\n",
      'common/c.ts': 'export const c = 2;\n',
      'k8s/svc.yaml': 'image: driftline/svc\ncommand: ["npx", "tsx", "tools/job.ts"]\n',
      'tools/job.ts': 'export const j = 1;\n',
    };
    const root = await repo(files);
    expect(check(root)).toEqual(['needs tools/job.ts, which is not copied to /app/tools/job.ts']);
    const ignoring = await repo({
      ...files,
      'k8s/svc.yaml': '',
      '.dockerignore': 'common/**\n',
    });
    const problems = check(ignoring);
    expect(problems).toContain('"COPY common ./common": common is not in the build context');
    expect(problems).toContain('needs common/c.ts, which is not copied to /app/common/c.ts');
  });
});
