import { describe, expect, it } from 'vitest';
import { createSigner, createTrust, generateSigningKey } from '../../../../common/model/signature.ts';
import { parseVersionSignature } from '../../../../common/model/version-signature.ts';

/**
 * Promise: a registry-version signature verifies for exactly the name, version and checksum it was made for,
 * by a trusted key; copied to another version or other files it is `version_mismatch`, edited or made by
 * another key `signature_invalid`, absent `version_unsigned`; it is never valid as a metadata signature.
 */
const key = createSigner(generateSigningKey());
const other = createSigner(generateSigningKey());
const trust = createTrust([key.publicKey]);
const claim = { name: 'driftline-efficiency', version: '3', checksum: 'a'.repeat(64) };
const reasonOf = (fn: () => void): string | undefined => {
  try {
    fn();
    return undefined;
  } catch (err) {
    return (err as { reason?: string }).reason;
  }
};

describe('registry-version signatures', () => {
  it('verifies for the version it was made for', () => {
    const stored = key.signVersion(claim);
    expect(parseVersionSignature(stored)).toMatchObject({ ...claim, keyId: key.keyId });
    expect(reasonOf(() => trust.verifyVersion(claim, stored))).toBeUndefined();
  });

  it('refuses it for another version, other files or another model (version_mismatch)', () => {
    const stored = key.signVersion(claim);
    expect(reasonOf(() => trust.verifyVersion({ ...claim, version: '7' }, stored))).toBe('version_mismatch');
    expect(reasonOf(() => trust.verifyVersion({ ...claim, checksum: 'b'.repeat(64) }, stored))).toBe(
      'version_mismatch',
    );
    expect(reasonOf(() => trust.verifyVersion({ ...claim, name: 'other' }, stored))).toBe('version_mismatch');
  });

  it('refuses an edited, foreign, malformed or missing signature', () => {
    const edited = JSON.stringify({ ...JSON.parse(key.signVersion(claim)), version: '7' });
    expect(reasonOf(() => trust.verifyVersion({ ...claim, version: '7' }, edited))).toBe('signature_invalid');
    expect(reasonOf(() => trust.verifyVersion(claim, other.signVersion(claim)))).toBe('signature_invalid');
    for (const bad of [
      '{',
      '[]',
      '{"format":"x"}',
      JSON.stringify({ ...JSON.parse(key.signVersion(claim)), value: 'x' }),
    ])
      expect(reasonOf(() => trust.verifyVersion(claim, bad))).toBe('signature_invalid');
    expect(reasonOf(() => trust.verifyVersion(claim, undefined))).toBe('version_unsigned');
    expect(reasonOf(() => trust.verifyVersion(claim, ''))).toBe('version_unsigned');
  });

  it('keeps the two signatures apart (domain separation)', () => {
    // A metadata signature over an object that looks like the claim is no version signature, and back.
    const meta = key.signMetadata({ ...claim });
    const forged = JSON.stringify({ ...JSON.parse(key.signVersion(claim)), value: meta.value });
    expect(reasonOf(() => trust.verifyVersion(claim, forged))).toBe('signature_invalid');
    const asMetadata = {
      ...claim,
      signature: {
        algorithm: 'ed25519',
        keyId: key.keyId,
        value: parseVersionSignature(key.signVersion(claim))?.value,
      },
    };
    expect(reasonOf(() => trust.verifyMetadata(asMetadata))).toBe('signature_invalid');
  });
});
