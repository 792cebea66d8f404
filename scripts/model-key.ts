/**
 * Model signing keys (Ed25519, see common/model/signature.ts).
 *   npx tsx scripts/model-key.ts generate   print a new private key (MODEL_SIGNING_KEY, vault_model_signing_key)
 *   npx tsx scripts/model-key.ts public     print the public key (MODEL_VERIFY_KEYS) of MODEL_SIGNING_KEY, or of
 *                                           the embedded default key under MODEL_KEYS_DIR when it is unset
 * The private key is read from the environment, never from the command line (it would land in the shell history).
 */
import path from 'node:path';
import { ConfigError } from '../common/errors.ts';
import { runMain } from '../common/main.ts';
import {
  DEFAULT_MODEL_KEYS_DIR,
  generateSigningKey,
  localSigningKey,
  publicKeyOf,
} from '../common/model/signature.ts';

if (
  process.argv[1] !== undefined &&
  path.resolve(process.argv[1]) === path.resolve(new URL(import.meta.url).pathname)
) {
  runMain(async () => {
    const command = process.argv[2];
    if (command === 'generate') process.stdout.write(`${generateSigningKey()}\n`);
    else if (command === 'public') {
      const key =
        process.env.MODEL_SIGNING_KEY ||
        (await localSigningKey(process.env.MODEL_KEYS_DIR || DEFAULT_MODEL_KEYS_DIR));
      process.stdout.write(`${publicKeyOf(key)}\n`);
    } else throw new ConfigError('usage: npx tsx scripts/model-key.ts generate|public');
  });
}
