/**
 * The stand-in's route table: Envoy's `prefix` route match (the longest
 * prefix of `:path` wins here, where Envoy takes the first listed), each route
 * sending its target's name to Check (per-route check_settings
 * context_extensions) and its requests to the target's upstream.
 */
import type { HttpStandinConfig, TargetConfig } from '../../engine/config/schema.js';

export interface Route {
  prefix: string;
  target: string;
  /** The target's upstream.address: the only thing the stand-in reads from a target (never its credentials). */
  upstream: URL;
}

export class RouteTable {
  private readonly routes: Route[];

  constructor(routes: HttpStandinConfig['routes'], targets: readonly TargetConfig[]) {
    this.routes = routes
      .map((route) => {
        const target = targets.find((t) => t.name === route.target);
        // The config schema refuses this already; a direct caller gets the same answer.
        if (target?.kind !== 'http') throw new Error(`listeners.http_standin: route ${route.prefix} names "${route.target}", which is not an http target`);
        return { prefix: route.prefix, target: route.target, upstream: new URL(target.upstream.address) };
      })
      .sort((a, b) => b.prefix.length - a.prefix.length);
  }

  /** The route for a request's `:path` (query included, as Envoy matches it), or null: Envoy's 404. */
  match(path: string): Route | null {
    return this.routes.find((route) => path.startsWith(route.prefix)) ?? null;
  }
}
