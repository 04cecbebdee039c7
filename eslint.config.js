// Lint: typescript-eslint's type-checked rules over the sources, tests and benchmarks. The rules that
// matter most here are the promise ones: a floating promise on the relay path is a lost error or an
// unhandled rejection that takes the process down.
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'data/**', '**/*.mjs', '**/*.js'] },
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': 'error',
      // Async functions without an await implement promise-returning interfaces (PrimaryChecker,
      // commander actions); making them return Promise.resolve() by hand says nothing more.
      '@typescript-eslint/require-await': 'off',
      // Unused names are a compile concern here (tsc with strict); `_`-prefixed ones are deliberate.
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
    },
  },
  {
    // Tests take JSON, SQLite rows and asymmetric matchers apart as they come: typed as any on purpose.
    files: ['test/**/*.ts', 'src/**/*.test.ts'],
    rules: {
      '@typescript-eslint/no-unsafe-assignment': 'off',
      '@typescript-eslint/no-unsafe-member-access': 'off',
      '@typescript-eslint/no-unsafe-return': 'off',
      '@typescript-eslint/no-unsafe-argument': 'off',
      '@typescript-eslint/no-unsafe-call': 'off',
    },
  },
);
