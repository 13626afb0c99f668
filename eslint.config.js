// ESLint (flat config). TypeScript is linted with type information so the promise rules can see
// which calls return promises: a floating or misused promise is an unhandled error or a race.
import js from '@eslint/js'
import globals from 'globals'
import tseslint from 'typescript-eslint'

export default tseslint.config(
  {ignores: ['dist/**', 'node_modules/**', 'oclif.manifest.json']},
  js.configs.recommended,
  {
    files: ['**/*.ts'],
    extends: [tseslint.configs.recommended],
    languageOptions: {
      parserOptions: {project: './tsconfig.test.json', tsconfigRootDir: import.meta.dirname},
    },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/await-thenable': 'error',
      '@typescript-eslint/no-unused-vars': [
        'error',
        {argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none'},
      ],
    },
  },
  {
    files: ['**/*.js', '**/*.cjs'],
    languageOptions: {globals: {...globals.node}},
  },
  {
    // bin/ is CommonJS (bin/package.json): see bin/run.js.
    files: ['**/*.cjs', 'bin/**/*.js'],
    languageOptions: {sourceType: 'commonjs'},
  },
)
