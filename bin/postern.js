#!/usr/bin/env node
// Thin launcher: the compiled entry lives in dist/ (run `npm run build`).
import '../dist/main.js';
