import { ArtifactError } from '../errors.ts';
import type { Logger } from '../logging/logger.ts';
import { createTrust, ModelSignatureError, type ModelSigner } from '../model/signature.ts';
import { metadataChecksum } from '../model/version-signature.ts';
import type { ModelRegistry, ModelVersion } from './types.ts';

/**
 * Registry-version signatures (`common/model/version-signature.ts`) in the registries: signing a version
 * its registrant is about to promote, and signing the champions of a registry promoted before versions
 * were signed (the upgrade).
 */

/**
 * Signs `registered` (just registered from `artifactDir`) for its name, version number and checksum, and
 * stores the signature with the version. The checksum signed is the one of the artifact the caller
 * registered: when the registry recorded another one, nothing is signed (ArtifactError).
 */
export async function signRegisteredVersion(
  registry: ModelRegistry,
  signer: ModelSigner,
  registered: ModelVersion,
  artifactDir: string,
): Promise<void> {
  const checksum = await metadataChecksum(artifactDir);
  if (registered.checksum !== checksum)
    throw new ArtifactError(
      `${registered.name} version ${registered.version}: the registry recorded checksum ` +
        `${registered.checksum.slice(0, 12)}, the artifact registered has ${checksum.slice(0, 12)}: not signing it`,
    );
  const claim = { name: registered.name, version: registered.version, checksum };
  await registry.setVersionSignature(registered.name, registered.version, signer.signVersion(claim));
}

/**
 * The upgrade of a registry whose champions were promoted before versions were signed: signs each version
 * that was champion once (status `champion` or `retired`), whose artifact carries a metadata signature by
 * this key and which has no valid version signature — so the current champion keeps serving and a rollback
 * to an earlier one still works. Refused (not signed, logged): a version whose checksum an earlier version
 * already has (an older artifact registered again: only the original is signed), and one carrying a valid
 * version signature made for another version (a copied one). Versions signed already cost one read each.
 *
 * Trusts the registry's history once, at the upgrade: a replay made before it and promoted through an
 * alias move is caught by the checksum rule only.
 */
export async function signLegacyChampions(
  registry: ModelRegistry,
  signer: ModelSigner,
  name: string,
  logger: Logger,
): Promise<{ signed: string[]; refused: string[] }> {
  const trust = createTrust([signer.publicKey]);
  const versions = await registry.listVersions(name);
  const signed: string[] = [];
  const refused: string[] = [];
  for (const v of versions) {
    if (v.status !== 'champion' && v.status !== 'retired') continue;
    try {
      trust.verifyVersion({ name, version: v.version, checksum: v.checksum }, v.versionSignature);
      continue; // signed already
    } catch (err) {
      if (!(err instanceof ModelSignatureError)) throw err;
      if (err.reason === 'version_mismatch') {
        refused.push(v.version);
        logger.error(`${name} v${v.version} carries a version signature copied from another version`, {
          action: 'version-sign',
          outcome: 'failure',
          modelVersion: v.version,
        });
        continue;
      }
    }
    const dir = await registry.fetchArtifact(name, v.version);
    try {
      await trust.verifyArtifact(dir);
    } catch (err) {
      if (!(err instanceof ModelSignatureError)) throw err;
      continue; // not this key's model: the edge refuses it anyway
    }
    const checksum = await metadataChecksum(dir);
    const original = versions.find((o) => o.checksum === checksum && Number(o.version) < Number(v.version));
    if (original) {
      refused.push(v.version);
      logger.error(
        `${name} v${v.version} is the artifact of v${original.version} registered again: not signing it ` +
          `(edge workers refuse it); v${original.version} is signed instead when it was champion`,
        { action: 'version-sign', outcome: 'failure', modelVersion: v.version },
      );
      continue;
    }
    await signRegisteredVersion(registry, signer, v, dir);
    signed.push(v.version);
    logger.info(`${name} v${v.version} (promoted before versions were signed) signed for its version`, {
      action: 'version-sign',
      outcome: 'success',
      modelVersion: v.version,
    });
  }
  return { signed, refused };
}
