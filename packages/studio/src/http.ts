// A small typed router over node:http: each route declares its method, path, and zod schemas for
// its path parameters, query and JSON body; handlers receive the parsed values. Every request is
// checked for its origin (cross-origin refused, Host pinned to the bound address against DNS
// rebinding), and every POST for the launch token; errors become JSON with a 4xx or 5xx status.
import { timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { z } from 'zod';

export class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

export interface RequestContext<P, Q, B> {
  params: P;
  query: Q;
  body: B;
  request: IncomingMessage;
  response: ServerResponse;
}

/** What a handler returns: JSON, raw bytes with a type, or nothing when it wrote the response itself (SSE). */
export type Reply = { json: unknown; status?: number } | { bytes: Buffer; type: string; cache?: boolean } | { streamed: true };

type Schema = z.ZodType;

/** The handler's body: the parsed JSON of a body schema, or the raw bytes (no schema, `rawBody`). */
type BodyOf<B> = [B] extends [never] ? Buffer : B extends Schema ? z.output<B> : never;

export interface Route<P extends Schema = Schema, Q extends Schema = Schema, B extends Schema = never> {
  method: 'GET' | 'POST';
  /** e.g. `/api/runs/:run/metrics`; a parameter matches one path segment. */
  path: string;
  params?: P;
  query?: Q;
  /** JSON body schema. */
  body?: B;
  /** Takes the body as bytes (uploads) instead of JSON. */
  rawBody?: true;
  handler(context: RequestContext<z.output<P>, z.output<Q>, BodyOf<B>>): Promise<Reply> | Reply;
}

/** Declares a route with its schemas' types flowing into the handler. */
export function route<P extends Schema = z.ZodObject, Q extends Schema = z.ZodObject, B extends Schema = never>(r: Route<P, Q, B>): Route {
  return r as unknown as Route;
}

export interface SecurityOptions {
  token: string;
  /** Host header values that name this server (127.0.0.1:port, localhost:port); empty accepts any (bound to 0.0.0.0). */
  allowedHosts: () => string[];
  /** Largest request body in bytes. */
  maxBody: number;
}

/** Reads the body up to `limit` bytes, answering 413 past it. */
export async function readBody(request: IncomingMessage, limit: number): Promise<Buffer> {
  const declared = Number(request.headers['content-length'] ?? 0);
  if (declared > limit) throw new HttpError(413, `the request body is ${declared} bytes; the limit is ${limit} bytes`);
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of request as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > limit) throw new HttpError(413, `the request body is larger than the limit of ${limit} bytes`);
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}

function sameToken(given: string | undefined, token: string): boolean {
  if (!given) return false;
  const [a, b] = [Buffer.from(given), Buffer.from(token)];
  return a.length === b.length && timingSafeEqual(a, b);
}

/** Refuses requests from other origins and, for POST, requests without the launch token. */
export function checkRequest(request: IncomingMessage, security: SecurityOptions): void {
  const hosts = security.allowedHosts();
  const host = request.headers.host ?? '';
  if (hosts.length && !hosts.includes(host)) throw new HttpError(403, `requests must address this server by ${hosts.join(' or ')}`);
  const origin = request.headers.origin;
  if (origin !== undefined && origin !== `http://${host}`) throw new HttpError(403, 'cross-origin requests are refused');
  if (request.headers['sec-fetch-site'] === 'cross-site') throw new HttpError(403, 'cross-origin requests are refused');
  if (request.method !== 'GET' && request.method !== 'HEAD') {
    if (!sameToken(request.headers['x-studio-token'] as string | undefined, security.token))
      throw new HttpError(403, 'this request needs the token from the URL the studio printed at launch');
  }
}

const compile = (path: string) => {
  const names: string[] = [];
  const pattern = path.replace(/:(\w+)/g, (_, name: string) => {
    names.push(name);
    return '([^/]+)';
  });
  return { regex: new RegExp(`^${pattern}$`), names };
};

const issues = (error: z.ZodError, where: string) =>
  error.issues.map((i) => `${where}${i.path.length ? ` '${i.path.join('.')}'` : ''}: ${i.message}`).join('; ');

function parse<S extends Schema>(schema: S | undefined, value: unknown, where: string): unknown {
  if (!schema) return value;
  const result = schema.safeParse(value);
  if (!result.success) throw new HttpError(400, issues(result.error, where));
  return result.data;
}

export const SECURITY_HEADERS = {
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'referrer-policy': 'no-referrer',
  'cross-origin-resource-policy': 'same-origin',
  'content-security-policy': "default-src 'self'; img-src 'self' data: blob:; style-src 'self' 'unsafe-inline'; connect-src 'self'",
};

export function sendJson(response: ServerResponse, status: number, value: unknown): void {
  const body = Buffer.from(JSON.stringify(value));
  response.writeHead(status, { ...SECURITY_HEADERS, 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store' });
  response.end(body);
}

/** A request handler for the routes; `fallback` serves what no route matches (static files). */
export function router(
  routes: Route[],
  security: SecurityOptions,
  fallback: (request: IncomingMessage, response: ServerResponse) => Promise<void>,
  onError: (error: Error) => void,
) {
  const compiled = routes.map((r) => ({ route: r, ...compile(r.path) }));
  return async (request: IncomingMessage, response: ServerResponse): Promise<void> => {
    try {
      checkRequest(request, security);
      const url = new URL(request.url ?? '/', 'http://studio.invalid');
      const pathname = url.pathname;
      const matches = compiled.filter((c) => c.regex.test(pathname));
      if (!matches.length) {
        if (request.method !== 'GET' && request.method !== 'HEAD') throw new HttpError(405, `${request.method} is not allowed here`);
        return await fallback(request, response);
      }
      const match = matches.find((c) => c.route.method === request.method);
      if (!match) throw new HttpError(405, `${request.method} is not allowed on ${pathname}`);
      const groups = match.regex.exec(pathname)!.slice(1);
      const rawParams = Object.fromEntries(
        match.names.map((name, i) => {
          try {
            return [name, decodeURIComponent(groups[i])];
          } catch {
            throw new HttpError(400, `path parameter '${name}' is not valid percent-encoding`);
          }
        }),
      );
      const r = match.route;
      const params = parse(r.params, rawParams, 'path parameter');
      const query = parse(r.query, Object.fromEntries(url.searchParams), 'query parameter');
      let body: unknown = undefined;
      if (r.rawBody) body = await readBody(request, security.maxBody);
      else if (r.body) {
        const text = (await readBody(request, security.maxBody)).toString('utf8');
        let json: unknown;
        try {
          json = text ? JSON.parse(text) : {};
        } catch {
          throw new HttpError(400, 'the request body is not valid JSON');
        }
        body = parse(r.body, json, 'body field');
      }
      const reply = await r.handler({ params, query, body, request, response } as never);
      if ('streamed' in reply) return;
      if ('json' in reply) return sendJson(response, reply.status ?? 200, reply.json);
      response.writeHead(200, {
        ...SECURITY_HEADERS,
        'content-type': reply.type,
        'cache-control': reply.cache ? 'private, max-age=3600' : 'no-store',
      });
      response.end(reply.bytes);
    } catch (e) {
      const error = e as Error;
      const status = error instanceof HttpError ? error.status : 500;
      if (status >= 500) onError(error);
      if (response.headersSent) response.end();
      else sendJson(response, status, { error: error.message });
    }
  };
}

/** Starts a server-sent events stream; returns a sender and a close hook. */
export function eventStream(
  request: IncomingMessage,
  response: ServerResponse,
): { send(event: string, data: unknown): void; closed: Promise<void> } {
  response.writeHead(200, {
    ...SECURITY_HEADERS,
    'content-type': 'text/event-stream; charset=utf-8',
    'cache-control': 'no-store',
    connection: 'keep-alive',
  });
  response.write(': connected\n\n');
  const closed = new Promise<void>((resolve) => request.on('close', () => resolve()));
  return {
    send(event, data) {
      if (!response.writableEnded) response.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
    },
    closed,
  };
}

/**
 * A server-sent events stream fed by `tick`, called now and every `intervalMs` until the page goes
 * away; when `tick` throws (the run was removed), a `gone` event ends the stream.
 */
export function pollingStream(
  request: IncomingMessage,
  response: ServerResponse,
  intervalMs: number,
  tick: (send: (event: string, data: unknown) => void) => void,
): Reply {
  const stream = eventStream(request, response);
  const run = () => {
    try {
      tick(stream.send);
    } catch {
      stream.send('gone', {});
      clearInterval(timer);
      response.end();
    }
  };
  const timer = setInterval(run, intervalMs);
  run();
  void stream.closed.then(() => clearInterval(timer));
  return { streamed: true };
}
