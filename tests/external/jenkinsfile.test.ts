/**
 * The repository's Jenkinsfile, run for real by the Groovy harness
 * (scripts/ci/jenkinsfile-harness/; Groovy from Maven Central, Java 17+): every
 * `sh` step runs in order with the pipeline's environment. `make` and `npm` are
 * stubs put first on PATH that record each call (arguments, STAGE_NAME and the
 * variables the pipeline sets, the vault password the Deploy stage sees) and
 * write the JUnit/SAST files the real targets would, so the test needs none of
 * what the stages would build or deploy. Checked:
 * - the stage order, the environment each step sees, the trigger, the vault
 *   password file bound for Deploy only and deleted afterwards, JUnit and
 *   archiving in `post`, the teardown in `post.cleanup`;
 * - a failing step fails the build, later stages do not run, `post` does;
 * - a missing credential fails the Deploy stage; DEPLOY=false skips the deploy
 *   stages;
 * - a small fixture Jenkinsfile of real commands: environment interpolation,
 *   `when`, `withEnv`, `dir`, `returnStdout`, masking, a failing test case
 *   making the build UNSTABLE, the timeout option ending it ABORTED, an invalid
 *   file refused.
 * Needs java and mvn (first run resolves Groovy); fails, never skips, without them.
 */
import { spawn } from 'node:child_process';
import { chmod, copyFile, mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const HARNESS = path.resolve('scripts/ci/jenkinsfile-harness/run.sh');
const JENKINSFILE = path.resolve('Jenkinsfile');
const VAULT_PASSWORD = 'vault-pass-from-jenkins-credential';

interface Call {
  tool: string;
  args: string;
  stage: string;
  ci: string;
  junit: string;
  imageTag: string;
  vaultFile: string;
  vaultContent: string;
  deployParam: string;
}
interface Summary {
  result: string;
  stages: { name: string; status: string }[];
  steps: { stage: string | null; step: string; args: unknown[] }[];
  triggers: string[];
  options: string[];
  agent: string;
  params: Record<string, unknown>;
  environment: Record<string, string>;
  tests: { total: number; failed: number; files: number };
  archived: string[];
}
interface Run {
  code: number;
  out: string;
  calls: Call[];
  summary: Summary;
  workspace: string;
}

let root = '';
let stubBin = '';
let secretFile = '';

const STUB = `#!/usr/bin/env bash
# Stub of make/npm for the Jenkinsfile harness test: records the call, writes what the real target would.
set -euo pipefail
tool="$(basename "$0")"
vault=""
if [ -n "\${ANSIBLE_VAULT_PASSWORD_FILE:-}" ] && [ -f "$ANSIBLE_VAULT_PASSWORD_FILE" ]; then vault="$(cat "$ANSIBLE_VAULT_PASSWORD_FILE")"; fi
printf '%s\\t%s\\t%s\\t%s\\t%s\\t%s\\t%s\\t%s\\t%s\\n' "$tool" "$*" "\${STAGE_NAME:-}" "\${CI:-}" "\${JUNIT:-}" \\
  "\${DRIFTLINE_IMAGE_TAG:-}" "\${ANSIBLE_VAULT_PASSWORD_FILE:-}" "$vault" "\${DEPLOY:-}" >> "$STUB_LOG"
case "$tool $*" in
  "make test-fast")
    mkdir -p test-results/junit
    printf '<?xml version="1.0"?>\\n<testsuites><testsuite name="unit" tests="3"><testcase name="a"/><testcase name="b"/><testcase name="c"/></testsuite></testsuites>\\n' > test-results/junit/unit.xml ;;
  "make test-external")
    mkdir -p test-results/junit
    printf '<?xml version="1.0"?>\\n<testsuites><testsuite name="external" tests="2"><testcase name="d"/><testcase name="e"/></testsuite></testsuites>\\n' > test-results/junit/external.xml ;;
  "make sast")
    mkdir -p test-results/sast
    echo '{"ok":true}' > test-results/sast/audit-check.json ;;
esac
if [ "$tool $*" = "\${STUB_FAIL:-}" ]; then echo "stub: $tool $* fails" >&2; exit 2; fi
echo "stub: $tool $* ok"
`;

function spawnHarness(args: string[], env: NodeJS.ProcessEnv): Promise<{ code: number; out: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(HARNESS, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (b: Buffer) => (out += b.toString()));
    child.stderr.on('data', (b: Buffer) => (out += b.toString()));
    child.once('error', reject);
    child.once('close', (code) => resolve({ code: code ?? -1, out }));
  });
}

let runs = 0;
/** Runs a Jenkinsfile (the repository's by default) in a fresh workspace with the stubs first on PATH. */
async function runPipeline(
  options: { jenkinsfile?: string; text?: string; args?: string[]; env?: NodeJS.ProcessEnv } = {},
): Promise<Run> {
  runs += 1;
  const workspace = path.join(root, `ws-${runs}`);
  const output = path.join(root, `out-${runs}`);
  const log = path.join(root, `calls-${runs}.tsv`);
  await mkdir(workspace, { recursive: true });
  if (options.text !== undefined) await writeFile(path.join(workspace, 'Jenkinsfile'), options.text);
  else await copyFile(options.jenkinsfile ?? JENKINSFILE, path.join(workspace, 'Jenkinsfile'));
  await writeFile(log, '');
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    PATH: `${stubBin}${path.delimiter}${process.env.PATH ?? ''}`,
    STUB_LOG: log,
    ...options.env,
  };
  for (const k of ['CI', 'JUNIT', 'DRIFTLINE_IMAGE_TAG', 'ANSIBLE_VAULT_PASSWORD_FILE', 'STAGE_NAME'])
    delete env[k];
  Object.assign(env, options.env);
  const { code, out } = await spawnHarness(
    ['--workspace', workspace, '--output', output, '--job', 'driftline', ...(options.args ?? [])],
    env,
  );
  const calls = (await readFile(log, 'utf8'))
    .split('\n')
    .filter(Boolean)
    .map((line) => {
      const [tool, args, stage, ci, junit, imageTag, vaultFile, vaultContent, deployParam] = line.split('\t');
      return { tool, args, stage, ci, junit, imageTag, vaultFile, vaultContent, deployParam } as Call;
    });
  let summary: Summary;
  try {
    summary = JSON.parse(await readFile(path.join(output, 'summary.json'), 'utf8')) as Summary;
  } catch (err) {
    throw new Error(`the harness wrote no summary.json (exit ${code}): ${String(err)}\n${out}`);
  }
  return { code, out, calls, summary, workspace };
}

const status = (r: Run): Record<string, string> =>
  Object.fromEntries(r.summary.stages.map((s) => [s.name, s.status]));
const makeCalls = (r: Run): string[] => r.calls.map((c) => `${c.tool} ${c.args}`);

beforeAll(async () => {
  root = await mkdtemp(path.join(tmpdir(), 'driftline-jenkinsfile-'));
  stubBin = path.join(root, 'bin');
  await mkdir(stubBin);
  for (const tool of ['make', 'npm']) {
    await writeFile(path.join(stubBin, tool), STUB);
    await chmod(path.join(stubBin, tool), 0o755);
  }
  secretFile = path.join(root, 'vault-pass');
  await writeFile(secretFile, `${VAULT_PASSWORD}\n`, { mode: 0o600 });
  // Resolve Groovy once up front, so a missing java/mvn fails here with its own message.
  const groovy = await new Promise<{ code: number; out: string }>((resolve, reject) => {
    const child = spawn(path.resolve('scripts/setup/groovy.sh'), [], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (b: Buffer) => (out += b.toString()));
    child.stderr.on('data', (b: Buffer) => (out += b.toString()));
    child.once('error', reject);
    child.once('close', (code) => resolve({ code: code ?? -1, out }));
  });
  if (groovy.code !== 0)
    throw new Error(`scripts/setup/groovy.sh failed (needs java 17+ and mvn):\n${groovy.out}`);
}, 300_000);

afterAll(async () => {
  if (root) await rm(root, { recursive: true, force: true });
});

describe('the Jenkinsfile, run by the Groovy harness', () => {
  let ok: Run;
  beforeAll(async () => {
    ok = await runPipeline({
      args: ['--build-number', '42', '--file-credential', `driftline-vault-password=${secretFile}`],
    });
  }, 300_000);

  it('succeeds and runs every stage in order, then post', () => {
    expect(ok.code, ok.out).toBe(0);
    expect(ok.summary.result).toBe('SUCCESS');
    expect(ok.out).toMatch(/Finished: SUCCESS\s*$/);
    expect(ok.summary.stages.map((s) => s.name)).toEqual([
      'Checkout',
      'Install',
      'Lint',
      'Test',
      'SAST',
      'Build images',
      'Deploy',
      'Smoke test',
    ]);
    expect(Object.values(status(ok)).every((s) => s === 'SUCCESS')).toBe(true);
    expect(makeCalls(ok)).toEqual([
      'make install',
      'make lint',
      'make test-fast',
      'make test-external',
      'make sast',
      'make images',
      'make deploy',
      'make smoke',
      'make services-down',
      'make teardown',
    ]);
    // Each step ran inside its stage (Jenkins' STAGE_NAME); post steps are outside any stage.
    expect(ok.calls.map((c) => c.stage)).toEqual([
      'Install',
      'Lint',
      'Test',
      'Test',
      'SAST',
      'Build images',
      'Deploy',
      'Smoke test',
      '',
      '',
    ]);
    expect(ok.summary.steps.find((s) => s.step === 'checkout')).toMatchObject({
      stage: 'Checkout',
      args: ['scm'],
    });
  });

  it('gives every step the pipeline environment', () => {
    for (const c of ok.calls) {
      expect(c.ci, `${c.tool} ${c.args}`).toBe('true');
      expect(c.junit).toBe('1');
      expect(c.imageTag).toBe('build-42');
      expect(c.deployParam).toBe('true');
    }
    expect(ok.summary.environment).toMatchObject({
      CI: 'true',
      JUNIT: '1',
      LOG_FORMAT: 'json',
      DRIFTLINE_IMAGE_TAG: 'build-42',
    });
  });

  it('binds the vault password file from the Jenkins credential for the deploy only, then deletes it', async () => {
    const deploy = ok.calls.find((c) => c.args === 'deploy');
    expect(deploy?.vaultContent).toBe(VAULT_PASSWORD);
    expect(deploy?.vaultFile).toMatch(/secretFiles/);
    expect(deploy?.vaultFile).not.toBe(secretFile);
    await expect(stat(deploy?.vaultFile as string)).rejects.toMatchObject({ code: 'ENOENT' });
    for (const c of ok.calls.filter((x) => x.args !== 'deploy')) expect(c.vaultFile).toBe('');
    expect(ok.summary.steps.find((s) => s.step === 'withCredentials')).toMatchObject({
      stage: 'Deploy',
      args: [{ kind: 'file', credentialsId: 'driftline-vault-password' }],
    });
  });

  it('is triggered by a GitHub push and bounded by a timeout', () => {
    expect(ok.summary.triggers).toEqual(['githubPush()']);
    expect(ok.summary.options).toContain('timeout(time: 120, unit: "MINUTES")');
    expect(ok.summary.options).toContain('skipDefaultCheckout()');
    expect(ok.summary.agent).toBe('label("driftline")');
    expect(ok.summary.params).toEqual({ DEPLOY: true, KEEP_DEPLOYMENT: false });
  });

  it('publishes the JUnit XML and archives the reports in post', () => {
    expect(ok.summary.tests).toEqual({ total: 5, failed: 0, files: 2 });
    expect(ok.summary.archived).toEqual(
      expect.arrayContaining([
        'test-results/junit/unit.xml',
        'test-results/junit/external.xml',
        'test-results/sast/audit-check.json',
      ]),
    );
    const post = ok.summary.steps.filter((s) => s.step === 'post').map((s) => s.args[1]);
    expect(post).toEqual(['always', 'cleanup']);
  });

  it('fails the build on a failing step: later stages do not run, post does', async () => {
    const r = await runPipeline({
      args: ['--file-credential', `driftline-vault-password=${secretFile}`],
      env: { STUB_FAIL: 'make sast' },
    });
    expect(r.code, r.out).toBe(1);
    expect(r.summary.result).toBe('FAILURE');
    expect(r.out).toContain('ERROR: script returned exit code 2');
    expect(makeCalls(r)).toEqual([
      'make install',
      'make lint',
      'make test-fast',
      'make test-external',
      'make sast',
      'make services-down',
      'make teardown',
    ]);
    expect(status(r)).toMatchObject({
      Test: 'SUCCESS',
      SAST: 'FAILURE',
      'Build images': 'SKIPPED_FAILURE',
      Deploy: 'SKIPPED_FAILURE',
      'Smoke test': 'SKIPPED_FAILURE',
    });
    expect(r.out).toContain('Stage "Deploy" skipped due to earlier failure(s)');
    // post: always (reports), unsuccessful (the hint), cleanup (teardown)
    expect(r.summary.steps.filter((s) => s.step === 'post').map((s) => s.args[1])).toEqual([
      'always',
      'unsuccessful',
      'cleanup',
    ]);
    expect(r.summary.archived).toContain('test-results/junit/unit.xml');
    expect(r.out).toMatch(/Finished: FAILURE\s*$/);
  }, 300_000);

  it('fails the Deploy stage when the vault password credential is missing', async () => {
    const r = await runPipeline();
    expect(r.code, r.out).toBe(1);
    expect(r.out).toContain("Could not find credentials entry with ID 'driftline-vault-password'");
    expect(makeCalls(r)).not.toContain('make deploy');
    expect(makeCalls(r)).not.toContain('make smoke');
    expect(status(r)).toMatchObject({ Deploy: 'FAILURE', 'Smoke test': 'SKIPPED_FAILURE' });
    expect(makeCalls(r).slice(-2)).toEqual(['make services-down', 'make teardown']);
  }, 300_000);

  it('skips building, deploying, smoke-testing and the teardown with DEPLOY=false', async () => {
    const r = await runPipeline({ args: ['--param', 'DEPLOY=false'] });
    expect(r.code, r.out).toBe(0);
    expect(status(r)).toMatchObject({
      SAST: 'SUCCESS',
      'Build images': 'SKIPPED_WHEN',
      Deploy: 'SKIPPED_WHEN',
      'Smoke test': 'SKIPPED_WHEN',
    });
    expect(makeCalls(r)).toEqual([
      'make install',
      'make lint',
      'make test-fast',
      'make test-external',
      'make sast',
      'make services-down',
    ]);
    expect(r.calls.every((c) => c.deployParam === 'false')).toBe(true);
  }, 300_000);
});

describe('the harness on a fixture Jenkinsfile of real commands', () => {
  const FIXTURE = `
def shout(String s) { s.toUpperCase() }
pipeline {
  agent any
  environment {
    GREETING = 'hello'
    TAG = "v-\${env.BUILD_NUMBER}-\${GREETING}"
    API_TOKEN = credentials('api-token')
  }
  stages {
    stage('Env') {
      environment { LOCAL = "\${GREETING}-local" }
      steps {
        sh 'echo "$GREETING $TAG $LOCAL $STAGE_NAME token=$API_TOKEN" > env.txt'
        script {
          def out = sh(returnStdout: true, script: 'echo captured').trim()
          writeFile file: 'script.txt', text: "\${out} \${shout('x')} \${BUILD_NUMBER}"
          env.LATER = 'set-in-script'
        }
      }
    }
    stage('Only on main') {
      when { branch 'main' }
      steps { sh 'echo main > main.txt' }
    }
    stage('Only on other branches') {
      when { not { branch 'main' } }
      steps { sh 'echo other > other.txt' }
    }
    stage('Wrappers') {
      steps {
        withEnv(['EXTRA=1']) {
          dir('sub') { sh 'echo "$EXTRA $LATER $(pwd)" > wrapped.txt' }
        }
        sh 'test -z "\${EXTRA:-}"'
      }
    }
    stage('Tests') {
      steps {
        sh '''mkdir -p reports
cat > reports/junit.xml <<XML
<testsuites><testsuite name="s"><testcase name="ok"/><testcase name="bad"><failure message="no"/></testcase></testsuite></testsuites>
XML'''
      }
    }
  }
  post {
    always { junit 'reports/*.xml'; archiveArtifacts artifacts: '*.txt, sub/**' }
    unstable { sh 'echo unstable > post-unstable.txt' }
    success { sh 'echo success > post-success.txt' }
    cleanup { sh 'echo cleanup >> post-order.txt' }
  }
}
`;

  it('interpolates the environment, follows when, wrappers and post, and turns a failed test case into UNSTABLE', async () => {
    const r = await runPipeline({
      text: FIXTURE,
      args: ['--branch', 'main', '--build-number', '7', '--string-credential', 'api-token=tok-123456'],
    });
    expect(r.code, r.out).toBe(3);
    expect(r.summary.result).toBe('UNSTABLE');
    const ws = (f: string): Promise<string> => readFile(path.join(r.workspace, f), 'utf8');
    expect(await ws('env.txt')).toBe('hello v-7-hello hello-local Env token=tok-123456\n');
    expect(r.out).not.toContain('tok-123456');
    expect(r.out).toContain('token=****');
    expect(await ws('script.txt')).toBe('captured X 7');
    expect(await ws('main.txt')).toBe('main\n');
    await expect(ws('other.txt')).rejects.toMatchObject({ code: 'ENOENT' });
    expect(status(r)['Only on other branches']).toBe('SKIPPED_WHEN');
    expect(await ws('sub/wrapped.txt')).toBe(`1 set-in-script ${path.join(r.workspace, 'sub')}\n`);
    expect(r.summary.tests).toEqual({ total: 2, failed: 1, files: 1 });
    expect(await ws('post-unstable.txt')).toBe('unstable\n');
    await expect(ws('post-success.txt')).rejects.toMatchObject({ code: 'ENOENT' });
    expect(await ws('post-order.txt')).toBe('cleanup\n');
    expect(r.summary.archived).toEqual(expect.arrayContaining(['env.txt', 'main.txt', 'sub/wrapped.txt']));
  }, 300_000);

  it('ends a build that exceeds its timeout option as ABORTED and still runs post', async () => {
    const r = await runPipeline({
      text: `pipeline {
  agent any
  options { timeout(time: 3, unit: 'SECONDS') }
  stages {
    stage('Slow') { steps { sh 'sleep 600' } }
    stage('After') { steps { sh 'echo after > after.txt' } }
  }
  post { always { sh 'echo post > post.txt' } }
}`,
    });
    expect(r.code, r.out).toBe(4);
    expect(r.summary.result).toBe('ABORTED');
    expect(r.out).toContain('Timeout has been exceeded');
    expect(status(r)).toEqual({ Slow: 'ABORTED', After: 'SKIPPED_FAILURE' });
    expect(await readFile(path.join(r.workspace, 'post.txt'), 'utf8')).toBe('post\n');
  }, 300_000);

  it('refuses a Jenkinsfile without an agent, and unknown steps fail the build', async () => {
    const invalid = await runPipeline({ text: `pipeline { stages { stage('x') { steps { sh 'true' } } } }` });
    expect(invalid.code, invalid.out).toBe(2);
    expect(invalid.out).toContain("missing required section 'agent'");
    const unknown = await runPipeline({
      text: `pipeline { agent any; stages { stage('x') { steps { slackSend channel: '#ci' } } } }`,
    });
    expect(unknown.code, unknown.out).toBe(1);
    expect(unknown.out).toContain("unsupported step 'slackSend'");
  }, 300_000);
});
