import {
  createHash,
  createPrivateKey,
  createPublicKey,
  randomBytes,
  sign,
  verify,
  type KeyObject,
} from 'node:crypto';
import { link, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Field } from '../config/env.ts';
import { ArtifactError, ConfigError, describeError } from '../errors.ts';
import { writeFileAtomic } from '../util/atomic-file.ts';
import { METADATA_FILE } from './artifact-files.ts';
import {
  parseVersionSignature,
  VERSION_SIGNATURE_FORMAT,
  versionSignedBytes,
  type VersionClaim,
  type VersionSignature,
} from './version-signature.ts';

/**
 * Model authenticity: Ed25519 signatures over an artifact's `metadata.json`.
 *
 * The registry (MLflow has no authentication) is not trusted to say which bytes are a model: anyone who
 * reaches it can register a version with a matching checksum and move the alias. The retrainer (and the
 * bootstrap of `npm start`) signs each artifact's metadata with a private key; the edge verifies it with
 * the public key(s) in its configuration and refuses a model that is unsigned or signed by another key
 * (the champion it serves keeps serving). `metadata.json` lists the sha256 and size of every other file of
 * the artifact, which the loader verifies, so signing the metadata authenticates the whole artifact.
 *
 * The signature lives in `metadata.json` itself, as `signature: { algorithm, keyId, value }`, over the
 * canonical JSON (keys sorted, no whitespace) of the metadata without its `signature` field, prefixed with
 * {@link SIGNATURE_CONTEXT}. Registries copy `metadata.json` byte for byte and its sha256 (taken after
 * signing) stays the version's checksum.
 *
 * Keys: a private key is the 32-byte Ed25519 seed, base64url (43 characters: exactly what
 * `scripts/vault.ts init` generates for `vault_model_signing_key`), or a PKCS#8 PEM; a public key is the raw
 * 32-byte Ed25519 public key, base64url. Embedded default (neither configured): one key pair generated on
 * first use under the local state directory ({@link DEFAULT_MODEL_KEYS_DIR}), shared by the retrainer and
 * the edge of one machine.
 *
 * Replaying an older *signed* artifact as a new registry version is caught by the second signature, over
 * the registry version (`version-signature.ts`): {@link ModelSigner.signVersion}, {@link ModelTrust.verifyVersion}.
 * Rotating keys: list the old and the new public key in `MODEL_VERIFY_KEYS` while versions signed by
 * either may be promoted.
 */

/** Signature algorithm of this format. */
export const SIGNATURE_ALGORITHM = 'ed25519' as const;
/** Domain separation: the signed bytes start with this line, so a signature is never valid for other data. */
export const SIGNATURE_CONTEXT = 'driftline-model-signature/1\n';
/** Where the embedded default key pair lives. */
export const DEFAULT_MODEL_KEYS_DIR = '.driftline/keys';
/** File of the embedded default private key (the seed, base64url) inside the keys directory. */
export const LOCAL_SIGNING_KEY_FILE = 'model-signing.key';

/** `metadata.signature`. */
export interface ModelSignature {
  algorithm: typeof SIGNATURE_ALGORITHM;
  /** First 16 hex digits of the sha256 of the raw public key (names the key in logs; not trusted). */
  keyId: string;
  /** Ed25519 signature, base64url. */
  value: string;
}

/**
 * Why a model was refused: `unsigned` (no metadata signature), `signature_invalid` (malformed, unknown key,
 * or does not verify — either signature), `version_unsigned` (no registry-version signature),
 * `version_mismatch` (a valid version signature, made for another version or other files).
 */
export type SignatureRefusal = 'unsigned' | 'signature_invalid' | 'version_unsigned' | 'version_mismatch';

/** A model signature failed: missing, malformed, made by a key this worker does not trust, or for another version. */
export class ModelSignatureError extends ArtifactError {
  readonly reason: SignatureRefusal;
  constructor(reason: SignatureRefusal, message: string) {
    super(message);
    this.reason = reason;
  }
}

const PKCS8_ED25519_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');
const SPKI_ED25519_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');
const B64URL_32 = /^[A-Za-z0-9_-]{43}$/;

/** An Ed25519 private key for signing, with its public half. */
export interface ModelSigner {
  readonly keyId: string;
  /** Raw public key, base64url (what `MODEL_VERIFY_KEYS` lists). */
  readonly publicKey: string;
  /** Signs `metadata.json` of the artifact in `dir` in place (atomically); returns the signature. */
  signArtifact(dir: string): Promise<ModelSignature>;
  /** The signature of a metadata object (without writing anything). */
  signMetadata(metadata: Record<string, unknown>): ModelSignature;
  /** The registry-version signature of `claim`, as stored in the registry (JSON text). */
  signVersion(claim: VersionClaim): string;
}

/** Public keys the edge accepts. */
export interface ModelTrust {
  /** Key ids, for logs. */
  readonly keyIds: readonly string[];
  /** Throws {@link ModelSignatureError} unless `metadata` carries a valid signature by a trusted key. */
  verifyMetadata(metadata: unknown, where?: string): void;
  /** Reads `dir/metadata.json` and verifies its signature (the loader checks the files against it). */
  verifyArtifact(dir: string): Promise<void>;
  /**
   * Throws {@link ModelSignatureError} unless `stored` (the registry's version signature, JSON text) is a valid
   * signature by a trusted key of exactly `expected`: the version being loaded and the checksum of its files.
   */
  verifyVersion(expected: VersionClaim, stored: string | undefined): void;
}

/** The canonical JSON of a value: object keys sorted, no whitespace. */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') {
    const s = JSON.stringify(value);
    // undefined, functions, symbols: JSON.stringify drops them in objects; never present in parsed JSON.
    return s === undefined ? 'null' : s;
  }
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  const entries = Object.entries(value as Record<string, unknown>)
    .filter(([, v]) => v !== undefined)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
}

/** The bytes a signature covers: the context line and the canonical metadata without `signature`. */
export function signedBytes(metadata: Record<string, unknown>): Buffer {
  const rest = { ...metadata };
  delete rest.signature;
  return Buffer.from(SIGNATURE_CONTEXT + canonicalJson(rest), 'utf8');
}

function keyIdOf(rawPublic: Buffer): string {
  return createHash('sha256').update(rawPublic).digest('hex').slice(0, 16);
}

function rawPublicOf(key: KeyObject): Buffer {
  const der = key.export({ format: 'der', type: 'spki' });
  return Buffer.from(der.subarray(der.length - 32));
}

/** Parses a private key: a 32-byte seed in base64url, or a PKCS#8 PEM. Throws ConfigError. */
export function parseSigningKey(text: string, what = 'MODEL_SIGNING_KEY'): KeyObject {
  const t = text.trim();
  try {
    if (B64URL_32.test(t)) {
      const seed = Buffer.from(t, 'base64url');
      return createPrivateKey({
        key: Buffer.concat([PKCS8_ED25519_PREFIX, seed]),
        format: 'der',
        type: 'pkcs8',
      });
    }
    if (t.startsWith('-----BEGIN')) {
      const key = createPrivateKey(t);
      if (key.asymmetricKeyType === 'ed25519') return key;
    }
  } catch {
    // reported below, without the key text
  }
  throw new ConfigError(
    `${what} is not an Ed25519 private key: expected 43 base64url characters (a 32-byte seed) or a PKCS#8 PEM`,
  );
}

/** Parses a raw 32-byte Ed25519 public key in base64url. Throws ConfigError. */
export function parsePublicKey(text: string, what = 'MODEL_VERIFY_KEYS'): KeyObject {
  const t = text.trim();
  if (B64URL_32.test(t)) {
    try {
      return createPublicKey({
        key: Buffer.concat([SPKI_ED25519_PREFIX, Buffer.from(t, 'base64url')]),
        format: 'der',
        type: 'spki',
      });
    } catch {
      // reported below
    }
  }
  throw new ConfigError(
    `${what}: ${JSON.stringify(t.slice(0, 60))} is not an Ed25519 public key (43 base64url characters)`,
  );
}

/** A new private key (32-byte seed, base64url). */
export function generateSigningKey(): string {
  return randomBytes(32).toString('base64url');
}

/** The public key (base64url) of a private key given as text. */
export function publicKeyOf(signingKey: string): string {
  return rawPublicOf(createPublicKey(parseSigningKey(signingKey))).toString('base64url');
}

/** A {@link ModelSigner} for a private key given as text (seed or PEM). */
export function createSigner(signingKey: string): ModelSigner {
  const key = parseSigningKey(signingKey);
  const raw = rawPublicOf(createPublicKey(key));
  const keyId = keyIdOf(raw);
  const signMetadata = (metadata: Record<string, unknown>): ModelSignature => ({
    algorithm: SIGNATURE_ALGORITHM,
    keyId,
    value: sign(null, signedBytes(metadata), key).toString('base64url'),
  });
  return {
    keyId,
    publicKey: raw.toString('base64url'),
    signMetadata,
    signVersion(claim) {
      const stored: VersionSignature = {
        format: VERSION_SIGNATURE_FORMAT,
        name: claim.name,
        version: claim.version,
        checksum: claim.checksum,
        algorithm: SIGNATURE_ALGORITHM,
        keyId,
        value: sign(null, versionSignedBytes(claim), key).toString('base64url'),
      };
      return JSON.stringify(stored);
    },
    async signArtifact(dir) {
      const file = path.join(dir, METADATA_FILE);
      let metadata: unknown;
      try {
        metadata = JSON.parse(await readFile(file, 'utf8'));
      } catch (err) {
        throw new ArtifactError(`cannot sign ${file}: ${describeError(err)}`, { cause: err });
      }
      if (typeof metadata !== 'object' || metadata === null || Array.isArray(metadata))
        throw new ArtifactError(`cannot sign ${file}: not a JSON object`);
      const signature = signMetadata(metadata as Record<string, unknown>);
      const signed = { ...(metadata as Record<string, unknown>), signature };
      await writeFileAtomic(file, `${JSON.stringify(signed, null, 2)}\n`);
      return signature;
    },
  };
}

/** A {@link ModelTrust} accepting signatures by any of `publicKeys` (base64url raw keys). */
export function createTrust(publicKeys: readonly string[]): ModelTrust {
  if (publicKeys.length === 0) throw new ConfigError('model signature check needs at least one public key');
  const keys = new Map<string, KeyObject>();
  for (const k of publicKeys) {
    const key = parsePublicKey(k);
    keys.set(keyIdOf(rawPublicOf(key)), key);
  }
  const keyIds = [...keys.keys()];
  const verifyMetadata = (metadata: unknown, where = 'model'): void => {
    if (typeof metadata !== 'object' || metadata === null || Array.isArray(metadata))
      throw new ModelSignatureError('signature_invalid', `${where}: metadata is not a JSON object`);
    const sig = (metadata as Record<string, unknown>).signature as Partial<ModelSignature> | undefined;
    if (sig === undefined || sig === null)
      throw new ModelSignatureError('unsigned', `${where} is not signed: refusing an unsigned model`);
    if (
      typeof sig !== 'object' ||
      sig.algorithm !== SIGNATURE_ALGORITHM ||
      typeof sig.value !== 'string' ||
      !/^[A-Za-z0-9_-]{86}$/.test(sig.value)
    )
      throw new ModelSignatureError('signature_invalid', `${where}: malformed signature`);
    const signed = signedBytes(metadata as Record<string, unknown>);
    const value = Buffer.from(sig.value, 'base64url');
    // The key id is a hint only: every trusted key is tried.
    for (const key of keys.values()) if (verify(null, signed, key, value)) return;
    throw new ModelSignatureError(
      'signature_invalid',
      `${where}: signature (key ${typeof sig.keyId === 'string' ? sig.keyId.slice(0, 16) : '?'}) does not ` +
        `verify with the trusted key${keyIds.length > 1 ? 's' : ''} ${keyIds.join(', ')}`,
    );
  };
  const verifyVersion = (expected: VersionClaim, stored: string | undefined): void => {
    const what = `${expected.name}@${expected.version}`;
    if (stored === undefined || stored === '')
      throw new ModelSignatureError(
        'version_unsigned',
        `${what} carries no registry-version signature (promoted without one, or signed before versions ` +
          `were signed): refusing it`,
      );
    const sig = parseVersionSignature(stored);
    if (!sig) throw new ModelSignatureError('signature_invalid', `${what}: malformed version signature`);
    const value = Buffer.from(sig.value, 'base64url');
    if (![...keys.values()].some((key) => verify(null, versionSignedBytes(sig), key, value)))
      throw new ModelSignatureError(
        'signature_invalid',
        `${what}: version signature (key ${sig.keyId.slice(0, 16)}) does not verify with the trusted keys`,
      );
    if (sig.name !== expected.name || sig.version !== expected.version || sig.checksum !== expected.checksum)
      throw new ModelSignatureError(
        'version_mismatch',
        `${what}: its version signature was made for ${sig.name}@${sig.version} (checksum ` +
          `${sig.checksum.slice(0, 12)}), not for this version (checksum ${expected.checksum.slice(0, 12)}): ` +
          `an artifact registered again under another version number is refused`,
      );
  };
  return {
    keyIds,
    verifyMetadata,
    verifyVersion,
    async verifyArtifact(dir) {
      const file = path.join(dir, METADATA_FILE);
      let metadata: unknown;
      try {
        metadata = JSON.parse(await readFile(file, 'utf8'));
      } catch (err) {
        throw new ArtifactError(`cannot read ${file}: ${describeError(err)}`, { cause: err });
      }
      verifyMetadata(metadata, `artifact ${dir}`);
    },
  };
}

/**
 * The embedded default private key: `<dir>/model-signing.key`, generated on first use (mode 600). Created
 * with a hard link from a complete temporary file, so two processes starting together agree on one key.
 */
export async function localSigningKey(dir: string = DEFAULT_MODEL_KEYS_DIR): Promise<string> {
  const file = path.join(dir, LOCAL_SIGNING_KEY_FILE);
  const read = async (): Promise<string | undefined> => {
    try {
      return (await readFile(file, 'utf8')).trim();
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw new ConfigError(`cannot read the local model signing key ${file}: ${describeError(err)}`);
    }
  };
  let key = await read();
  if (key === undefined) {
    await mkdir(dir, { recursive: true, mode: 0o700 });
    const tmp = `${file}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
    await writeFile(tmp, `${generateSigningKey()}\n`, { mode: 0o600 });
    try {
      await link(tmp, file);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    } finally {
      await rm(tmp, { force: true });
    }
    key = await read();
  }
  if (key === undefined) throw new ConfigError(`cannot create the local model signing key ${file}`);
  parseSigningKey(key, file);
  return key;
}

/** The signer of a service: `MODEL_SIGNING_KEY` when set, else the embedded default key in `keysDir`. */
export async function resolveSigner(signingKey: string | undefined, keysDir: string): Promise<ModelSigner> {
  return createSigner(signingKey ?? (await localSigningKey(keysDir)));
}

/** The edge's trust: `MODEL_VERIFY_KEYS` when set, else the public half of the embedded default key. */
export async function resolveTrust(verifyKeys: readonly string[], keysDir: string): Promise<ModelTrust> {
  if (verifyKeys.length > 0) return createTrust(verifyKeys);
  return createTrust([publicKeyOf(await localSigningKey(keysDir))]);
}

/** Config field: `MODEL_SIGNING_KEY` (secret; unset → undefined, the embedded default). */
export function signingKeyField(): Field<string | undefined> {
  const env = 'MODEL_SIGNING_KEY';
  return {
    env,
    description:
      'Ed25519 private key signing each model artifact: 43 base64url characters (32-byte seed) or a PKCS#8 ' +
      'PEM; unset: a key generated under MODEL_KEYS_DIR (vault: vault_model_signing_key)',
    secret: true,
    defaultText: undefined,
    parse(raw) {
      if (raw === undefined || raw.trim() === '') return { ok: true, value: undefined };
      try {
        parseSigningKey(raw, env);
        return { ok: true, value: raw.trim() };
      } catch (err) {
        return { ok: false, error: (err as Error).message };
      }
    },
  };
}

/** Config field: `MODEL_VERIFY_KEYS` (comma-separated public keys; unset → [], the embedded default). */
export function verifyKeysField(): Field<string[]> {
  const env = 'MODEL_VERIFY_KEYS';
  return {
    env,
    description:
      'Ed25519 public keys (43 base64url characters each, comma-separated) whose model signatures the edge ' +
      'accepts; unset: the public half of the key under MODEL_KEYS_DIR (npx tsx scripts/model-key.ts public)',
    secret: false,
    defaultText: undefined,
    parse(raw) {
      if (raw === undefined || raw.trim() === '') return { ok: true, value: [] };
      const items = raw.split(',').map((s) => s.trim());
      try {
        for (const item of items) parsePublicKey(item, env);
      } catch (err) {
        return { ok: false, error: (err as Error).message };
      }
      return { ok: true, value: items };
    },
  };
}

/** Config field: `MODEL_KEYS_DIR`. */
export function keysDirField(): Field<string> {
  return {
    env: 'MODEL_KEYS_DIR',
    description:
      'Directory of the embedded default model signing key pair (used when MODEL_SIGNING_KEY / ' +
      'MODEL_VERIFY_KEYS are unset)',
    secret: false,
    defaultText: DEFAULT_MODEL_KEYS_DIR,
    parse: (raw) => ({
      ok: true,
      value: raw === undefined || raw.trim() === '' ? DEFAULT_MODEL_KEYS_DIR : raw.trim(),
    }),
  };
}
