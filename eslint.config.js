// @ts-check
import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import prettier from 'eslint-config-prettier';

/**
 * Service boundaries, enforced on relative imports (an import that climbs to the repository root
 * and into another top-level folder):
 * - a service (`broker/`, `edge-inference/`, `retrainer/`, `dashboard/`, `simulator/`) imports only
 *   `common/` and its own folder — its image holds just those (scripts/check-image-imports.ts);
 * - `common/` imports no service;
 * - `bin/` (the all-in-one runner and the offline evaluator) may import every service;
 * - `tests/`, `bench/` and `scripts/` may import anything; nothing else imports them.
 */
const SERVICES = ['broker', 'edge-inference', 'retrainer', 'dashboard', 'simulator'];
const TOOLING = ['bin', 'tests', 'bench', 'scripts'];

/** A no-restricted-imports rule refusing relative imports of these top-level folders. */
function refuse(folders, message) {
  return ['error', { patterns: [{ regex: `^(\\.\\./)+(${folders.join('|')})/`, message }] }];
}

const boundaries = [
  ...SERVICES.map((service) => ({
    files: [`${service}/**/*.ts`],
    rules: {
      'no-restricted-imports': refuse(
        [...SERVICES.filter((s) => s !== service), ...TOOLING],
        `${service}/ may import only common/ and its own folder: its image holds just those. ` +
          'Code two services share belongs in common/.',
      ),
    },
  })),
  {
    files: ['common/**/*.ts'],
    rules: {
      'no-restricted-imports': refuse(
        [...SERVICES, ...TOOLING],
        'common/ is shared by every service and imports none of them (nor bin/, tests/, bench/, scripts/).',
      ),
    },
  },
  {
    // The all-in-one runner and the offline evaluator may import every service.
    files: ['bin/**/*.ts'],
    rules: {
      'no-restricted-imports': refuse(
        TOOLING.filter((f) => f !== 'bin'),
        'bin/ may import common/ and every service, not tests/, bench/ or scripts/.',
      ),
    },
  },
];

export default tseslint.config(
  {
    ignores: [
      'node_modules/**',
      'dist/**',
      '.driftline/**',
      '.services/**',
      '.venv/**',
      '.venv-bench/**',
      'test-results/**',
      'dashboard/public/vendor/**',
      'coverage/**',
    ],
  },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    files: ['**/*.ts'],
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/consistent-type-imports': 'error',
      'no-console': 'off',
    },
  },
  {
    files: ['dashboard/public/**/*.js'],
    languageOptions: {
      globals: {
        window: 'readonly',
        document: 'readonly',
        EventSource: 'readonly',
        fetch: 'readonly',
        console: 'readonly',
        localStorage: 'readonly',
        setTimeout: 'readonly',
        clearTimeout: 'readonly',
        requestAnimationFrame: 'readonly',
        URLSearchParams: 'readonly',
        performance: 'readonly',
        setInterval: 'readonly',
      },
    },
  },
  ...boundaries,
  prettier,
);
