import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../../../../common/config/env.ts';
import { ConfigError } from '../../../../common/errors.ts';
import { sha256Bytes, verifyArtifactFiles } from '../../../../common/model/artifact-files.ts';
import {
  ModelSignatureError,
  canonicalJson,
  createSigner,
  createTrust,
  generateSigningKey,
  keysDirField,
  localSigningKey,
  publicKeyOf,
  resolveTrust,
  signingKeyField,
  verifyKeysField,
} from '../../../../common/model/signature.ts';
import { generateSecret } from '../../../../scripts/vault.ts';

const dirs: string[] = [];
afterEach(async () => {
  await Promise.all(dirs.splice(0).map((d) => rm(d, { recursive: true, force: true })));
});
async function tmp(): Promise<string> {
  const d = await mkdtemp(path.join(os.tmpdir(), 'driftline-sig-'));
  dirs.push(d);
  return d;
}

/** A minimal artifact: one listed file and a metadata.json naming its sha256 and size. */
async function artifact(weights = 'weights-v1'): Promise<string> {
  const dir = await tmp();
  await writeFile(path.join(dir, 'weights.bin'), weights);
  const metadata = {
    format: 'driftline-model/1',
    name: 'driftline-efficiency',
    version: 'candidate',
    validation: { accuracy: 0.91 },
    files: { 'weights.bin': { sha256: sha256Bytes(Buffer.from(weights)), bytes: weights.length } },
  };
  await writeFile(path.join(dir, 'metadata.json'), JSON.stringify(metadata, null, 2));
  return dir;
}

async function readMeta(dir: string): Promise<Record<string, unknown>> {
  return JSON.parse(await readFile(path.join(dir, 'metadata.json'), 'utf8')) as Record<string, unknown>;
}

describe('model signatures (Ed25519 over metadata.json)', () => {
  const key = generateSigningKey();
  const signer = createSigner(key);
  const trust = createTrust([signer.publicKey]);

  it('a signed artifact verifies, and still passes its checksums (the signature is part of metadata.json)', async () => {
    const dir = await artifact();
    const sig = await signer.signArtifact(dir);
    expect(sig).toMatchObject({ algorithm: 'ed25519', keyId: signer.keyId });
    await expect(trust.verifyArtifact(dir)).resolves.toBeUndefined();
    await expect(verifyArtifactFiles(dir)).resolves.toMatchObject({ files: [{ name: 'weights.bin' }] });
  });

  it('refuses an unsigned artifact', async () => {
    const dir = await artifact();
    const err = await trust.verifyArtifact(dir).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ModelSignatureError);
    expect((err as ModelSignatureError).reason).toBe('unsigned');
  });

  it('refuses an artifact signed by another key, even when it claims the trusted key id', async () => {
    const dir = await artifact();
    const forger = createSigner(generateSigningKey());
    await forger.signArtifact(dir);
    const meta = await readMeta(dir);
    (meta.signature as { keyId: string }).keyId = signer.keyId;
    await writeFile(path.join(dir, 'metadata.json'), JSON.stringify(meta));
    const err = await trust.verifyArtifact(dir).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ModelSignatureError);
    expect((err as ModelSignatureError).reason).toBe('signature_invalid');
  });

  it('refuses signed metadata that was edited afterwards (other weights checksum, other metrics)', async () => {
    const dir = await artifact();
    await signer.signArtifact(dir);
    const signed = await readMeta(dir);
    for (const edit of [
      (m: Record<string, unknown>) => {
        (m.files as Record<string, { sha256: string }>)['weights.bin']!.sha256 = sha256Bytes(
          Buffer.from('evil'),
        );
      },
      (m: Record<string, unknown>) => {
        (m.validation as { accuracy: number }).accuracy = 0.99;
      },
      (m: Record<string, unknown>) => {
        m.name = 'another-model';
      },
    ]) {
      const m = structuredClone(signed);
      edit(m);
      expect(() => trust.verifyMetadata(m)).toThrow(ModelSignatureError);
    }
    // Key order and whitespace are not part of what is signed.
    const reordered = Object.fromEntries(Object.entries(signed).reverse());
    expect(() => trust.verifyMetadata(JSON.parse(JSON.stringify(reordered)))).not.toThrow();
  });

  it('refuses malformed signatures with a clear error, never throwing anything else', () => {
    const m = { format: 'driftline-model/1', files: {} };
    for (const signature of [
      'x',
      42,
      [],
      { algorithm: 'rsa', keyId: 'k', value: 'a'.repeat(86) },
      { algorithm: 'ed25519', keyId: 'k', value: 'short' },
      { algorithm: 'ed25519', keyId: 'k', value: 'a'.repeat(86) },
    ])
      expect(() => trust.verifyMetadata({ ...m, signature })).toThrow(ModelSignatureError);
    expect(() => trust.verifyMetadata(null)).toThrow(ModelSignatureError);
    expect(() => trust.verifyMetadata([1])).toThrow(ModelSignatureError);
  });

  it('accepts any of several trusted keys (rotation)', async () => {
    const other = createSigner(generateSigningKey());
    const both = createTrust([other.publicKey, signer.publicKey]);
    const a = await artifact('a');
    const b = await artifact('b');
    await signer.signArtifact(a);
    await other.signArtifact(b);
    await expect(both.verifyArtifact(a)).resolves.toBeUndefined();
    await expect(both.verifyArtifact(b)).resolves.toBeUndefined();
    await expect(trust.verifyArtifact(b)).rejects.toThrow(ModelSignatureError);
  });

  it('canonical JSON sorts keys at every depth', () => {
    expect(canonicalJson({ b: 1, a: { d: [1, { f: 2, e: 3 }], c: null } })).toBe(
      '{"a":{"c":null,"d":[1,{"e":3,"f":2}]},"b":1}',
    );
  });
});

describe('model signing keys and their configuration', () => {
  it('a value generated by scripts/vault.ts init is a valid signing key (vault_model_signing_key)', () => {
    const secret = generateSecret();
    expect(publicKeyOf(secret)).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(createSigner(secret).publicKey).toBe(publicKeyOf(secret));
  });

  it('validates MODEL_SIGNING_KEY and MODEL_VERIFY_KEYS, never echoing the private key', () => {
    const spec = { signingKey: signingKeyField(), verifyKeys: verifyKeysField(), keysDir: keysDirField() };
    expect(loadConfig(spec, {})).toEqual({
      signingKey: undefined,
      verifyKeys: [],
      keysDir: '.driftline/keys',
    });
    const key = generateSigningKey();
    const pub = publicKeyOf(key);
    expect(loadConfig(spec, { MODEL_SIGNING_KEY: key, MODEL_VERIFY_KEYS: `${pub}, ${pub}` })).toMatchObject({
      signingKey: key,
      verifyKeys: [pub, pub],
    });
    const bad = () =>
      loadConfig(spec, { MODEL_SIGNING_KEY: 'secret-but-not-a-key', MODEL_VERIFY_KEYS: 'nope' });
    expect(bad).toThrow(ConfigError);
    expect(bad).toThrow(/MODEL_SIGNING_KEY is not an Ed25519 private key/);
    expect(bad).toThrow(/MODEL_VERIFY_KEYS: "nope" is not an Ed25519 public key/);
    expect(bad).not.toThrow(/secret-but-not-a-key/);
    expect(signingKeyField().secret).toBe(true);
  });

  it('accepts a PKCS#8 PEM private key', async () => {
    const { generateKeyPairSync } = await import('node:crypto');
    const { privateKey } = generateKeyPairSync('ed25519');
    const pem = privateKey.export({ format: 'pem', type: 'pkcs8' }).toString();
    const s = createSigner(pem);
    const m = { a: 1 };
    expect(() =>
      createTrust([s.publicKey]).verifyMetadata({ ...m, signature: s.signMetadata(m) }),
    ).not.toThrow();
  });

  it('embedded default: one key pair under the keys directory, created once even by concurrent starters', async () => {
    const dir = path.join(await tmp(), 'keys');
    const keys = await Promise.all([1, 2, 3, 4].map(() => localSigningKey(dir)));
    expect(new Set(keys).size).toBe(1);
    expect((await stat(path.join(dir, 'model-signing.key'))).mode & 0o077).toBe(0);
    const trust = await resolveTrust([], dir);
    const s = createSigner(keys[0] as string);
    expect(trust.keyIds).toEqual([s.keyId]);
    expect(await localSigningKey(dir)).toBe(keys[0]);
  });
});
