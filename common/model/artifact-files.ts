import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { ArtifactError, describeError } from '../errors.ts';

/**
 * The checksum part of the model artifact format, without TensorFlow.js: checks
 * the files of an artifact directory against its `metadata.json`. The
 * registries' own gate before they store, promote or hand out an artifact;
 * `artifact.ts` (the full save/load, which needs tfjs) builds on it.
 */

/** The metadata file every artifact has; its sha256 is the version's checksum. */
export const METADATA_FILE = 'metadata.json';

/** One file listed in `metadata.files`. */
export interface ListedFile {
  /** File name inside the artifact directory (no path separators). */
  name: string;
  /** Expected sha256, hex. */
  sha256: string;
  /** Expected size in bytes. */
  bytes: number;
}

/** The result of a successful {@link verifyArtifactFiles}. */
export interface VerifiedArtifact {
  /** sha256 (hex) of `metadata.json` as stored. */
  checksum: string;
  /** Files listed in `metadata.files`, sorted by name. */
  files: ListedFile[];
  /** Every file of the artifact: `metadata.json` first, then the listed ones. */
  allFiles: string[];
  /** The parsed metadata (the registry reads `name`, `version`, `format` for logs). */
  metadata: Record<string, unknown>;
}

/** sha256 (hex) of a buffer. */
export function sha256Bytes(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** A listed file name must be a plain file name: no separators, no `..`, not metadata.json itself. */
function isSafeFileName(name: string): boolean {
  return (
    name.length > 0 &&
    name !== '.' &&
    name !== '..' &&
    !name.includes('/') &&
    !name.includes('\\') &&
    name !== METADATA_FILE
  );
}

/**
 * Parses `metadata.json` bytes and returns its listed files. Throws
 * `ArtifactError` when the JSON or the `files` table is malformed.
 */
export function parseListedFiles(
  metadataBytes: Uint8Array,
  where: string,
): { metadata: Record<string, unknown>; files: ListedFile[] } {
  let metadata: unknown;
  try {
    metadata = JSON.parse(Buffer.from(metadataBytes).toString('utf8'));
  } catch (err) {
    throw new ArtifactError(`${where}: ${METADATA_FILE} is not valid JSON (${describeError(err)})`, {
      cause: err,
    });
  }
  if (typeof metadata !== 'object' || metadata === null || Array.isArray(metadata)) {
    throw new ArtifactError(`${where}: ${METADATA_FILE} is not a JSON object`);
  }
  const table = (metadata as Record<string, unknown>).files;
  if (
    typeof table !== 'object' ||
    table === null ||
    Array.isArray(table) ||
    Object.keys(table).length === 0
  ) {
    throw new ArtifactError(`${where}: ${METADATA_FILE} has no "files" table of sha256+bytes`);
  }
  const files: ListedFile[] = [];
  for (const [name, entry] of Object.entries(table as Record<string, unknown>)) {
    const e = entry as { sha256?: unknown; bytes?: unknown } | null;
    if (!isSafeFileName(name))
      throw new ArtifactError(`${where}: ${METADATA_FILE} lists an unsafe file name ${JSON.stringify(name)}`);
    if (
      typeof e !== 'object' ||
      e === null ||
      typeof e.sha256 !== 'string' ||
      !/^[0-9a-f]{64}$/.test(e.sha256) ||
      typeof e.bytes !== 'number' ||
      !Number.isInteger(e.bytes) ||
      e.bytes < 0
    ) {
      throw new ArtifactError(
        `${where}: ${METADATA_FILE} entry for ${name} needs a hex sha256 and an integer bytes`,
      );
    }
    files.push({ name, sha256: e.sha256, bytes: e.bytes });
  }
  files.sort((a, b) => a.name.localeCompare(b.name));
  return { metadata: metadata as Record<string, unknown>, files };
}

/**
 * Reads `dir/metadata.json` and checks size and sha256 of every file it lists.
 * When `expectedChecksum` is given, `metadata.json` itself must hash to it (the
 * registry's record), so a swapped metadata file is caught too.
 * Throws `ArtifactError` naming the first mismatch.
 */
export async function verifyArtifactFiles(dir: string, expectedChecksum?: string): Promise<VerifiedArtifact> {
  let metadataBytes: Buffer;
  try {
    metadataBytes = await readFile(path.join(dir, METADATA_FILE));
  } catch (err) {
    throw new ArtifactError(`${dir}: cannot read ${METADATA_FILE} (${describeError(err)})`, { cause: err });
  }
  const checksum = sha256Bytes(metadataBytes);
  if (expectedChecksum !== undefined && checksum !== expectedChecksum) {
    throw new ArtifactError(
      `${dir}: ${METADATA_FILE} sha256 ${checksum} does not match the registered checksum ${expectedChecksum}`,
    );
  }
  const { metadata, files } = parseListedFiles(metadataBytes, dir);
  for (const file of files) {
    const full = path.join(dir, file.name);
    let actual: string;
    let size: number;
    try {
      const bytes = await readFile(full);
      size = bytes.byteLength;
      actual = sha256Bytes(bytes);
    } catch (err) {
      throw new ArtifactError(`${dir}: cannot read ${file.name} (${describeError(err)})`, { cause: err });
    }
    if (size !== file.bytes)
      throw new ArtifactError(`${dir}: ${file.name} has ${size} bytes, ${METADATA_FILE} says ${file.bytes}`);
    if (actual !== file.sha256)
      throw new ArtifactError(
        `${dir}: ${file.name} sha256 ${actual} does not match ${METADATA_FILE} (${file.sha256})`,
      );
  }
  return { checksum, files, allFiles: [METADATA_FILE, ...files.map((f) => f.name)], metadata };
}
