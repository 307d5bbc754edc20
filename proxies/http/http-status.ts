/**
 * envoy.type.v3.HttpStatus carries a StatusCode enum, which the loader hands
 * over by name ("Forbidden"). The table comes from the loaded proto itself,
 * so it cannot drift from Envoy's enum.
 */
import { envoyServices } from '../../ext-authz/envoy-protos.js';
import type { HttpStatus } from './envoy-types.js';

let codes: Map<string, number> | null = null;

function codeTable(): Map<string, number> {
  if (codes) return codes;
  const enumType = envoyServices().grpc.envoy.type.v3.StatusCode.type as { value: Array<{ name: string; number: number }> };
  codes = new Map(enumType.value.map(({ name, number }) => [name, number]));
  return codes;
}

/** The numeric status, or undefined when absent, "Empty" (0) or not a status an HTTP/1.1 reply can carry. */
export function httpStatusCode(status: HttpStatus | undefined | null): number | undefined {
  const code = status?.code;
  const number = typeof code === 'number' ? code : code === undefined ? undefined : codeTable().get(code);
  return number !== undefined && number >= 200 && number <= 599 ? number : undefined;
}
