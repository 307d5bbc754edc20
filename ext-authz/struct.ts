/**
 * google.protobuf.Struct ⇄ plain JSON, for dynamic metadata. proto-loader
 * hands Struct over as its message form ({fields: {k: {stringValue: …}}});
 * policies and the ExternalProcessor want plain JSON. Field names are read
 * in either casing because the Check service is loaded with JSON names
 * (camelCase, as OPA-Envoy's input has them) and the rest with proto names.
 */

type ValueMessage = Record<string, unknown>;

export function structToJson(struct: unknown): Record<string, unknown> {
  const fields = (struct as { fields?: Record<string, ValueMessage> } | null | undefined)?.fields ?? {};
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(fields)) out[key] = valueToJson(value);
  return out;
}

function valueToJson(value: ValueMessage | null | undefined): unknown {
  if (!value) return null;
  const pick = (camel: string, snake: string): unknown => (camel in value ? value[camel] : value[snake]);
  const struct = pick('structValue', 'struct_value');
  if (struct !== undefined && struct !== null) return structToJson(struct);
  const list = pick('listValue', 'list_value') as { values?: ValueMessage[] } | undefined;
  if (list !== undefined && list !== null) return (list.values ?? []).map(valueToJson);
  for (const [camel, snake] of [['stringValue', 'string_value'], ['numberValue', 'number_value'], ['boolValue', 'bool_value']] as const) {
    const scalar = pick(camel, snake);
    if (scalar !== undefined && scalar !== null) return scalar;
  }
  return null;
}

/** Plain JSON → Struct, with the field names of a service loaded with camelCase JSON names. */
export function jsonToStruct(object: Record<string, unknown>): { fields: Record<string, ValueMessage> } {
  const fields: Record<string, ValueMessage> = {};
  for (const [key, value] of Object.entries(object)) {
    if (value !== undefined) fields[key] = jsonToValue(value);
  }
  return { fields };
}

function jsonToValue(value: unknown): ValueMessage {
  if (value === null) return { nullValue: 'NULL_VALUE' };
  switch (typeof value) {
    case 'string': return { stringValue: value };
    case 'number': return { numberValue: value };
    case 'boolean': return { boolValue: value };
    case 'object':
      return Array.isArray(value)
        ? { listValue: { values: value.map(jsonToValue) } }
        : { structValue: jsonToStruct(value as Record<string, unknown>) };
    default:
      // undefined inside arrays, functions, bigints: not JSON; null keeps list positions.
      return { nullValue: 'NULL_VALUE' };
  }
}
