import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { ArtifactError, describeError } from '../errors.ts';
import { METADATA_FILE, sha256Bytes } from './artifact-files.ts';

/**
 * Registry-version signatures: an Ed25519 signature binding an artifact to the registry version it was
 * promoted as — model name, version number and checksum (sha256 of `metadata.json`).
 *
 * Why: the metadata signature (`signature.ts`) says *which bytes* the retrainer produced, not *which
 * version* they are. Anyone who reaches the registry could re-register an older, legitimately signed
 * artifact as a new version and move the `champion` alias to it (a replay: the edge would serve a model
 * the gate had since replaced). The version number is assigned by the registry at registration, so the
 * signer signs after registering: the retrainer signs a challenger it is about to promote (a rejected one
 * gets none), the bootstrap signs the first champion; the signature is stored in the registry with the
 * version (MLflow: model-version tag `driftline.version_signature`; directory registry:
 * `versions/<v>/signature.json`). The edge verifies it against the version it is loading and the
 * checksum of the files it fetched: a signature copied from another version is refused
 * (`version_mismatch`), a version without one too (`version_unsigned`). A rollback to the original
 * version (the alias moved back) carries that version's own signature and is accepted.
 *
 * Stored form (JSON): `{ format, name, version, checksum, algorithm, keyId, value }`; the signature covers
 * {@link VERSION_SIGNATURE_CONTEXT} + the canonical JSON of `{ checksum, name, version }`.
 */

/** Domain separation: never valid as a metadata signature, nor the other way round. */
export const VERSION_SIGNATURE_CONTEXT = 'driftline-model-version-signature/1\n';
export const VERSION_SIGNATURE_FORMAT = 'driftline-version-signature/1' as const;

/** What a version signature vouches for. */
export interface VersionClaim {
  /** Registered model name. */
  name: string;
  /** Registry-assigned version number. */
  version: string;
  /** sha256 (hex) of the artifact's `metadata.json`. */
  checksum: string;
}

/** The stored version signature. */
export interface VersionSignature extends VersionClaim {
  format: typeof VERSION_SIGNATURE_FORMAT;
  algorithm: 'ed25519';
  /** Names the key in logs (not trusted: every trusted key is tried). */
  keyId: string;
  /** Ed25519 signature, base64url. */
  value: string;
}

/** The bytes a version signature covers. */
export function versionSignedBytes(claim: VersionClaim): Buffer {
  const canonical = JSON.stringify({ checksum: claim.checksum, name: claim.name, version: claim.version });
  return Buffer.from(VERSION_SIGNATURE_CONTEXT + canonical, 'utf8');
}

/** Reads a stored version signature; undefined when it is not one (malformed, wrong types). */
export function parseVersionSignature(text: string): VersionSignature | undefined {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (typeof v !== 'object' || v === null) return undefined;
  const o = v as Record<string, unknown>;
  const strings = ['name', 'version', 'checksum', 'keyId', 'value'] as const;
  if (o.format !== VERSION_SIGNATURE_FORMAT || o.algorithm !== 'ed25519') return undefined;
  if (!strings.every((k) => typeof o[k] === 'string')) return undefined;
  if (!/^[A-Za-z0-9_-]{86}$/.test(o.value as string)) return undefined;
  return {
    format: VERSION_SIGNATURE_FORMAT,
    algorithm: 'ed25519',
    name: o.name as string,
    version: o.version as string,
    checksum: o.checksum as string,
    keyId: o.keyId as string,
    value: o.value as string,
  };
}

/** sha256 (hex) of `<dir>/metadata.json`: the checksum a version signature binds. */
export async function metadataChecksum(dir: string): Promise<string> {
  const file = path.join(dir, METADATA_FILE);
  try {
    return sha256Bytes(await readFile(file));
  } catch (err) {
    throw new ArtifactError(`cannot read ${file}: ${describeError(err)}`, { cause: err });
  }
}
