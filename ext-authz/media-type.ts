/**
 * Whether a Content-Type says JSON, in any case and with any parameters:
 * application/json, text/json, and the +json types (problem+json,
 * merge-patch+json, vnd.api+json). What upstream frameworks parse as JSON,
 * so what Check's parsed_body and ext_proc's masking must read as JSON too.
 */
export function isJsonType(contentType: string): boolean {
  const type = contentType.split(';', 1)[0]!.trim().toLowerCase();
  return type === 'application/json' || type === 'text/json' || ((type.startsWith('application/') || type.startsWith('text/')) && type.endsWith('+json'));
}
