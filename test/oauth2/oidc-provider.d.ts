// oidc-provider ships no types; the tests use a handful of its APIs, typed where they are used.
declare module 'oidc-provider';
