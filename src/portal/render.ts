/**
 * Server-rendered pages through eta (auto-escaping on: `<%= %>` escapes, only `<%~ %>` of values
 * postern generated itself — the layout body, the QR code's SVG — is raw). Views are files beside
 * this module (copied into dist by the build), read once and cached. Every page is sent with
 * `Cache-Control: no-store`: a new password or recovery codes must not stay in a browser cache.
 */
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Eta } from 'eta';
import type { FastifyReply } from 'fastify';
import { en, type Strings } from './strings.js';

export const VIEWS_DIR = fileURLToPath(new URL('./views', import.meta.url));
export const STATIC_DIR = fileURLToPath(new URL('./static', import.meta.url));
/** The browser half of @simplewebauthn (its package exports no path to the bundle: found from its entry). */
export const WEBAUTHN_BROWSER_BUNDLE = path.join(path.dirname(createRequire(import.meta.url).resolve('@simplewebauthn/browser')), '../dist/bundle/index.umd.min.js');

export interface PageBase {
  title: string;
  /** The signed-in login shown in the bar (omitted on sign-in pages). */
  login?: string;
  /** Which tab is current; omitted: no tabs (sign-in, second factor). */
  nav?: 'passwords' | 'passkeys' | 'history';
}

export class Pages {
  private readonly eta = new Eta({ views: VIEWS_DIR, cache: true, autoEscape: true });
  readonly t: Strings = en;

  send(reply: FastifyReply, view: string, data: PageBase & Record<string, unknown>, status = 200): FastifyReply {
    const html = this.eta.render(`./${view}`, { ...data, t: this.t, csrf: reply.generateCsrf() });
    return reply.code(status).header('cache-control', 'no-store').type('text/html; charset=utf-8').send(html);
  }
}
