import { mkdir, mkdtemp, readdir, readFile, rename, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { silentLogger, type Logger } from '../logging/logger.ts';
import { describeError } from '../errors.ts';
import { verifyArtifactFiles, type ListedFile } from '../model/artifact-files.ts';
import {
  appendLineSync,
  copyAndSync,
  fsyncDir,
  readJsonIfExists,
  writeAndSync,
  writeFileAtomic,
} from '../util/atomic-file.ts';
import { assertModelName, assertVersion, RegistryError, storageError } from './errors.ts';
import { compareVersions, deriveStatus, rollbackTarget } from './history.ts';
import { withDirLock } from './lock.ts';
import { pollChampion, type ChampionSource } from './watch.ts';
import { finiteMetrics, registrationTags } from './tags.ts';
import type {
  AliasAudit,
  AliasChange,
  ModelRegistry,
  ModelVersion,
  RegisterInfo,
  Unwatch,
  WatchOptions,
} from './types.ts';

/**
 * The embedded model registry: a plain directory that the edge worker and the
 * retrainer (and the registry CLI) may share, even from different processes.
 *
 * Layout under `<root>/<name>/`:
 *
 *     versions/<v>/artifact/…       the artifact files (metadata.json + the files it lists)
 *     versions/<v>/version.json     the registration record (checksum, metrics, tags, run id)
 *     versions/<v>/rejected.json    present once the version was rejected (reason, when, correlation id)
 *     versions/<v>/signature.json   the registry-version signature, once signed (opaque text)
 *     aliases.json                  {"champion": "<v>", "lastChange": {…}}
 *     history.jsonl                 one AliasChange per line, oldest first
 *     .tmp/                         registrations in progress (never read)
 *     .lock/                        held during an alias move or a rejection
 *
 * Crash safety: a version is assembled in `.tmp/`, fsynced, verified against
 * its checksums and then renamed into `versions/<v>` in one step; `rename(2)`
 * of a directory fails when the target exists (non-empty), which is also how
 * version numbers are allocated — two processes racing for `<v>` cannot both
 * win, the loser retries with the next number. `aliases.json` is replaced by
 * temp file + fsync + rename and only ever names a version whose stored files
 * were verified just before. Readers therefore see a complete version or none,
 * and the old or the new champion, never a mix. If a process dies between the
 * alias rename and the history append, the alias file's `lastChange` still
 * carries the entry; `history()` merges it and the next alias move writes it.
 */

/** Fault-injection points for crash tests. Production code never sets them. */
export interface DirectoryRegistryFaults {
  /** Runs after the artifact copy is durable in its temp dir, before it is renamed into `versions/`. */
  afterArtifactCopy?: (tmpDir: string) => void | Promise<void>;
  /** Runs after the new alias file is durable as a temp file, before it replaces `aliases.json`. */
  beforeAliasRename?: (tmpFile: string) => void | Promise<void>;
}

/** Options of {@link DirectoryRegistry}. */
export interface DirectoryRegistryOptions {
  /** Registry root directory. Default `.driftline/registry` (relative to the working directory). */
  root?: string;
  /** Logger for registrations, alias moves and watcher errors. Default: silent. */
  logger?: Logger;
  /** Default poll interval of {@link DirectoryRegistry.watchChampion}, ms. Default 1000. */
  watchIntervalMs?: number;
  /** How long an alias move waits for another process's lock, ms. Default 10 000. */
  lockTimeoutMs?: number;
  /** Temp registrations older than this are swept on the next registration, ms. Default 1 hour. */
  tmpMaxAgeMs?: number;
  /** Crash-injection hooks for tests. */
  faults?: DirectoryRegistryFaults;
}

/** Default root of the directory registry. */
export const DEFAULT_REGISTRY_DIR = '.driftline/registry';

/** `versions/<v>/version.json`. */
interface VersionRecord {
  format: 'driftline-registry-version/1';
  name: string;
  version: string;
  createdAt: string;
  /** sha256 of the stored metadata.json. */
  checksum: string;
  /** The files metadata.json lists (sha256 + bytes), copied here for a quick look. */
  files: ListedFile[];
  metrics: Record<string, number>;
  tags: Record<string, string>;
  runId?: string;
  /** What metadata.json's own `version` field said (`bootstrap`, `candidate`…): informative only. */
  artifactVersion?: string;
}

/** `versions/<v>/rejected.json`. */
interface RejectionRecord {
  reason: string;
  at: string;
  correlationId?: string;
}

/** `aliases.json`. */
interface AliasFile {
  format: 'driftline-registry-aliases/1';
  champion?: string;
  /** The move that produced this file; merged into the history if its line is missing. */
  lastChange?: AliasChange;
}

function sameChange(a: AliasChange, b: AliasChange): boolean {
  return a.at === b.at && a.to === b.to && a.action === b.action && a.from === b.from;
}

function isNumericVersion(entry: string): boolean {
  return /^[1-9][0-9]{0,8}$/.test(entry);
}

/** The embedded directory registry. See the module comment for layout and guarantees. */
export class DirectoryRegistry implements ModelRegistry {
  readonly kind: string;
  /** Absolute registry root. */
  readonly root: string;
  private readonly logger: Logger;
  private readonly watchIntervalMs: number;
  private readonly lockTimeoutMs: number;
  private readonly tmpMaxAgeMs: number;
  private readonly faults: DirectoryRegistryFaults;
  private readonly watchers = new Set<Unwatch>();

  constructor(options: DirectoryRegistryOptions = {}) {
    this.root = path.resolve(options.root ?? DEFAULT_REGISTRY_DIR);
    this.kind = `directory ${this.root}`;
    this.logger = options.logger ?? silentLogger();
    this.watchIntervalMs = options.watchIntervalMs ?? 1000;
    this.lockTimeoutMs = options.lockTimeoutMs ?? 10_000;
    this.tmpMaxAgeMs = options.tmpMaxAgeMs ?? 3_600_000;
    this.faults = options.faults ?? {};
  }

  // ---- paths -------------------------------------------------------------

  private modelDir(name: string): string {
    assertModelName(name);
    return path.join(this.root, name);
  }
  private versionsDir(name: string): string {
    return path.join(this.modelDir(name), 'versions');
  }
  private versionDir(name: string, version: string): string {
    assertVersion(version);
    return path.join(this.versionsDir(name), version);
  }
  private artifactDir(name: string, version: string): string {
    return path.join(this.versionDir(name, version), 'artifact');
  }
  private aliasFile(name: string): string {
    return path.join(this.modelDir(name), 'aliases.json');
  }
  private historyFile(name: string): string {
    return path.join(this.modelDir(name), 'history.jsonl');
  }
  private lockDir(name: string): string {
    return path.join(this.modelDir(name), '.lock');
  }

  // ---- reads -------------------------------------------------------------

  private async readRecord(name: string, version: string): Promise<VersionRecord | undefined> {
    return readJsonIfExists<VersionRecord>(path.join(this.versionDir(name, version), 'version.json'));
  }

  private async readRejection(name: string, version: string): Promise<RejectionRecord | undefined> {
    return readJsonIfExists<RejectionRecord>(path.join(this.versionDir(name, version), 'rejected.json'));
  }

  private async readVersionSignature(name: string, version: string): Promise<string | undefined> {
    try {
      return await readFile(path.join(this.versionDir(name, version), 'signature.json'), 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
  }

  private async readAliases(name: string): Promise<AliasFile> {
    return (
      (await readJsonIfExists<AliasFile>(this.aliasFile(name))) ?? { format: 'driftline-registry-aliases/1' }
    );
  }

  /** History lines as written (a torn last line from a crash is skipped). */
  private async readHistoryFile(name: string): Promise<AliasChange[]> {
    let text: string;
    try {
      text = await readFile(this.historyFile(name), 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw err;
    }
    const out: AliasChange[] = [];
    for (const line of text.split('\n')) {
      if (line.trim() === '') continue;
      try {
        out.push(JSON.parse(line) as AliasChange);
      } catch {
        this.logger.warn('registry history: skipping an unreadable line', { name, line: line.slice(0, 200) });
      }
    }
    return out;
  }

  private async existingVersions(name: string): Promise<string[]> {
    let entries: string[];
    try {
      entries = await readdir(this.versionsDir(name));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw err;
    }
    return entries.filter(isNumericVersion).sort(compareVersions);
  }

  private toModelVersion(
    record: VersionRecord,
    rejection: RejectionRecord | undefined,
    champion: string | undefined,
    history: readonly AliasChange[],
    versionSignature?: string,
  ): ModelVersion {
    const status = deriveStatus(record.version, {
      champion,
      rejected: rejection !== undefined,
      everChampion: history.some((change) => change.to === record.version),
    });
    return {
      name: record.name,
      version: record.version,
      createdAt: record.createdAt,
      checksum: record.checksum,
      status,
      ...(rejection ? { rejectedReason: rejection.reason } : {}),
      metrics: { ...record.metrics },
      tags: { ...record.tags },
      ...(record.runId !== undefined ? { runId: record.runId } : {}),
      ...(versionSignature !== undefined ? { versionSignature } : {}),
    };
  }

  async history(name: string): Promise<AliasChange[]> {
    const [lines, aliases] = await Promise.all([this.readHistoryFile(name), this.readAliases(name)]);
    const last = aliases.lastChange;
    if (last && !lines.some((entry) => sameChange(entry, last))) lines.push(last);
    return lines;
  }

  async getVersion(name: string, version: string): Promise<ModelVersion | undefined> {
    const record = await this.readRecord(name, version);
    if (!record) return undefined;
    const [rejection, aliases, history, signature] = await Promise.all([
      this.readRejection(name, version),
      this.readAliases(name),
      this.history(name),
      this.readVersionSignature(name, version),
    ]);
    return this.toModelVersion(record, rejection, aliases.champion, history, signature);
  }

  async listVersions(name: string): Promise<ModelVersion[]> {
    const versions = await this.existingVersions(name);
    const [aliases, history] = await Promise.all([this.readAliases(name), this.history(name)]);
    const out: ModelVersion[] = [];
    for (const version of versions) {
      const record = await this.readRecord(name, version);
      if (!record) continue;
      const [rejection, signature] = await Promise.all([
        this.readRejection(name, version),
        this.readVersionSignature(name, version),
      ]);
      out.push(this.toModelVersion(record, rejection, aliases.champion, history, signature));
    }
    return out;
  }

  async getChampion(name: string): Promise<ModelVersion | undefined> {
    const { champion } = await this.readAliases(name);
    return champion === undefined ? undefined : this.getVersion(name, champion);
  }

  async fetchArtifact(name: string, version: string): Promise<string> {
    const record = await this.readRecord(name, version);
    if (!record)
      throw new RegistryError(
        'REGISTRY_NOT_FOUND',
        `${name} version ${version} does not exist in ${this.kind}`,
      );
    const dir = this.artifactDir(name, version);
    await verifyArtifactFiles(dir, record.checksum);
    return dir;
  }

  // ---- writes ------------------------------------------------------------

  // Each write reports a full or unwritable registry directory as a typed RegistryError
  // (REGISTRY_STORAGE_FULL, retriable; REGISTRY_STORAGE_DENIED): what was being done, where, what to do.
  // Nothing half-written is left visible: a registration is assembled in .tmp/ (removed on failure) and the
  // alias file is replaced atomically.

  private async writing<T>(doing: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      throw storageError(err, doing, this.root);
    }
  }

  registerVersion(name: string, artifactDir: string, info: RegisterInfo): Promise<ModelVersion> {
    return this.writing(`cannot register a version of ${name}`, () => this.register(name, artifactDir, info));
  }

  setChampion(name: string, version: string, audit: AliasAudit): Promise<void> {
    return this.writing(`cannot promote ${name} version ${version}`, () =>
      this.promote(name, version, audit),
    );
  }

  rollback(name: string, audit: AliasAudit): Promise<ModelVersion> {
    return this.writing(`cannot roll ${name} back`, () => this.rollBack(name, audit));
  }

  setVersionSignature(name: string, version: string, signature: string): Promise<void> {
    return this.writing(`cannot store the version signature of ${name} version ${version}`, async () => {
      if (!(await this.readRecord(name, version)))
        throw new RegistryError(
          'REGISTRY_NOT_FOUND',
          `${name} version ${version} does not exist in ${this.kind}`,
        );
      await writeFileAtomic(path.join(this.versionDir(name, version), 'signature.json'), signature);
    });
  }

  markRejected(name: string, version: string, reason: string, correlationId?: string): Promise<void> {
    return this.writing(`cannot mark ${name} version ${version} rejected`, () =>
      this.reject(name, version, reason, correlationId),
    );
  }

  private async register(name: string, artifactDir: string, info: RegisterInfo): Promise<ModelVersion> {
    const modelDir = this.modelDir(name);
    const source = await verifyArtifactFiles(artifactDir);
    const tmpRoot = path.join(modelDir, '.tmp');
    await mkdir(tmpRoot, { recursive: true });
    await mkdir(this.versionsDir(name), { recursive: true });
    await this.sweepTmp(tmpRoot);

    const tmp = await mkdtemp(path.join(tmpRoot, 'reg-'));
    try {
      const tmpArtifact = path.join(tmp, 'artifact');
      await mkdir(tmpArtifact);
      for (const file of source.allFiles)
        await copyAndSync(path.join(artifactDir, file), path.join(tmpArtifact, file));
      await fsyncDir(tmpArtifact);
      // The copy must match what was verified (the source could change under us).
      const copy = await verifyArtifactFiles(tmpArtifact, source.checksum);
      await this.faults.afterArtifactCopy?.(tmp);

      const artifactVersion = typeof copy.metadata.version === 'string' ? copy.metadata.version : undefined;
      const createdAt = new Date().toISOString();
      for (let attempt = 0; attempt < 1000; attempt++) {
        const existing = await this.existingVersions(name);
        const next = String(existing.length === 0 ? 1 : Number(existing[existing.length - 1]) + 1);
        const record: VersionRecord = {
          format: 'driftline-registry-version/1',
          name,
          version: next,
          createdAt,
          checksum: copy.checksum,
          files: copy.files,
          metrics: finiteMetrics(info.metrics),
          tags: registrationTags(info),
          ...(info.runId !== undefined ? { runId: info.runId } : {}),
          ...(artifactVersion !== undefined ? { artifactVersion } : {}),
        };
        await writeAndSync(path.join(tmp, 'version.json'), `${JSON.stringify(record, null, 2)}\n`);
        await fsyncDir(tmp);
        try {
          // The claim: fails with EEXIST/ENOTEMPTY when another process took `next` first.
          await rename(tmp, path.join(this.versionsDir(name), next));
        } catch (err) {
          const code = (err as NodeJS.ErrnoException).code;
          if (code === 'EEXIST' || code === 'ENOTEMPTY') continue;
          throw err;
        }
        await fsyncDir(this.versionsDir(name));
        this.logger.info('registered model version', {
          action: 'registry.register',
          name,
          modelVersion: next,
          checksum: copy.checksum,
          correlationId: info.correlationId,
          artifactVersion,
        });
        return this.toModelVersion(
          record,
          undefined,
          (await this.readAliases(name)).champion,
          await this.history(name),
        );
      }
      throw new RegistryError(
        'REGISTRY_LOCKED',
        `could not allocate a version number for ${name} after 1000 attempts`,
      );
    } catch (err) {
      await rm(tmp, { recursive: true, force: true });
      throw err;
    }
  }

  /** Removes registrations abandoned by crashed processes (best effort). */
  private async sweepTmp(tmpRoot: string): Promise<void> {
    try {
      for (const entry of await readdir(tmpRoot)) {
        const full = path.join(tmpRoot, entry);
        const info = await stat(full).catch(() => undefined);
        if (info && Date.now() - info.mtimeMs > this.tmpMaxAgeMs)
          await rm(full, { recursive: true, force: true });
      }
    } catch (err) {
      this.logger.debug('registry: tmp sweep failed', { err: describeError(err) });
    }
  }

  /** Moves the alias (caller holds the lock and has verified `to`); returns the change recorded. */
  private async moveAlias(
    name: string,
    to: string,
    audit: AliasAudit,
    action: AliasChange['action'],
  ): Promise<AliasChange> {
    const aliases = await this.readAliases(name);
    const history = await this.readHistoryFile(name);
    // Repair: a crash after the previous alias rename may have lost its history line.
    const last = aliases.lastChange;
    if (last && !history.some((entry) => sameChange(entry, last))) await this.appendHistory(name, last);

    const change: AliasChange = {
      at: new Date().toISOString(),
      name,
      alias: 'champion',
      ...(aliases.champion !== undefined ? { from: aliases.champion } : {}),
      to,
      by: audit.by,
      reason: audit.reason,
      ...(audit.correlationId !== undefined ? { correlationId: audit.correlationId } : {}),
      action,
    };
    const next: AliasFile = { format: 'driftline-registry-aliases/1', champion: to, lastChange: change };
    await writeFileAtomic(this.aliasFile(name), `${JSON.stringify(next, null, 2)}\n`, {
      beforeRename: this.faults.beforeAliasRename,
    });
    await this.appendHistory(name, change);
    this.logger.info(action === 'rollback' ? 'champion rolled back' : 'champion promoted', {
      action: `registry.${action}`,
      name,
      modelVersion: to,
      from: change.from,
      by: audit.by,
      reason: audit.reason,
      correlationId: audit.correlationId,
    });
    return change;
  }

  /** Appends one history line, first closing a line torn by a crash (caller holds the lock). */
  private async appendHistory(name: string, change: AliasChange): Promise<void> {
    const file = this.historyFile(name);
    let prefix = '';
    try {
      const text = await readFile(file, 'utf8');
      if (text.length > 0 && !text.endsWith('\n')) prefix = '\n';
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    await appendLineSync(file, `${prefix}${JSON.stringify(change)}`);
  }

  /** Verifies a stored version before the alias may point at it. */
  private async assertPromotable(name: string, version: string): Promise<void> {
    const record = await this.readRecord(name, version);
    if (!record)
      throw new RegistryError(
        'REGISTRY_NOT_FOUND',
        `${name} version ${version} does not exist in ${this.kind}`,
      );
    const rejection = await this.readRejection(name, version);
    if (rejection)
      throw new RegistryError(
        'REGISTRY_STATE',
        `${name} version ${version} was rejected (${rejection.reason}); it cannot become champion`,
      );
    await verifyArtifactFiles(this.artifactDir(name, version), record.checksum);
  }

  private async promote(name: string, version: string, audit: AliasAudit): Promise<void> {
    assertVersion(version);
    await mkdir(this.modelDir(name), { recursive: true });
    await withDirLock(
      this.lockDir(name),
      async () => {
        await this.assertPromotable(name, version);
        const { champion } = await this.readAliases(name);
        if (champion === version) {
          this.logger.info('champion unchanged: already points at this version', {
            name,
            modelVersion: version,
          });
          return;
        }
        await this.moveAlias(name, version, audit, 'promote');
      },
      { timeoutMs: this.lockTimeoutMs },
    );
  }

  private async rollBack(name: string, audit: AliasAudit): Promise<ModelVersion> {
    await mkdir(this.modelDir(name), { recursive: true });
    const target = await withDirLock(
      this.lockDir(name),
      async () => {
        const { champion } = await this.readAliases(name);
        if (champion === undefined)
          throw new RegistryError('REGISTRY_NO_PREVIOUS', `${name} has no champion to roll back from`);
        const history = await this.history(name);
        const rejected = new Set<string>();
        for (const v of await this.existingVersions(name))
          if (await this.readRejection(name, v)) rejected.add(v);
        const to = rollbackTarget(history, champion, (v) => rejected.has(v));
        if (to === undefined)
          throw new RegistryError(
            'REGISTRY_NO_PREVIOUS',
            `${name}: no previous champion before version ${champion} to roll back to`,
          );
        await this.assertPromotable(name, to);
        await this.moveAlias(name, to, audit, 'rollback');
        return to;
      },
      { timeoutMs: this.lockTimeoutMs },
    );
    const version = await this.getVersion(name, target);
    if (!version)
      throw new RegistryError('REGISTRY_NOT_FOUND', `${name} version ${target} vanished after rollback`);
    return version;
  }

  private async reject(name: string, version: string, reason: string, correlationId?: string): Promise<void> {
    assertVersion(version);
    await mkdir(this.modelDir(name), { recursive: true });
    await withDirLock(
      this.lockDir(name),
      async () => {
        if (!(await this.readRecord(name, version)))
          throw new RegistryError(
            'REGISTRY_NOT_FOUND',
            `${name} version ${version} does not exist in ${this.kind}`,
          );
        const { champion } = await this.readAliases(name);
        if (champion === version)
          throw new RegistryError(
            'REGISTRY_STATE',
            `${name} version ${version} is the champion; roll back before rejecting it`,
          );
        const record: RejectionRecord = {
          reason,
          at: new Date().toISOString(),
          ...(correlationId !== undefined ? { correlationId } : {}),
        };
        await writeFileAtomic(
          path.join(this.versionDir(name, version), 'rejected.json'),
          `${JSON.stringify(record, null, 2)}\n`,
        );
        this.logger.info('model version rejected', {
          action: 'registry.reject',
          name,
          modelVersion: version,
          reason,
          correlationId,
        });
      },
      { timeoutMs: this.lockTimeoutMs },
    );
  }

  // ---- watching ----------------------------------------------------------

  watchChampion(
    name: string,
    onChange: (champion: ModelVersion | undefined) => void,
    options: WatchOptions = {},
  ): Unwatch {
    assertModelName(name);
    const source: ChampionSource = {
      readChampion: async () => (await this.readAliases(name)).champion,
      loadVersion: (version) => this.getVersion(name, version),
    };
    const stop = pollChampion(source, onChange, {
      ...options,
      intervalMs: options.intervalMs ?? this.watchIntervalMs,
      logger: this.logger,
      name,
    });
    const unwatch: Unwatch = () => {
      stop();
      this.watchers.delete(unwatch);
    };
    this.watchers.add(unwatch);
    return unwatch;
  }

  async close(): Promise<void> {
    for (const unwatch of [...this.watchers]) unwatch();
  }
}
